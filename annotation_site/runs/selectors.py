"""Reads of the runs domain: run lists, one run, the checkpoints and batches a launch can use, and
the side-by-side comparison of reward models (the paper's Tables 7 and 8)."""
from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import QuerySet

from annotation_site.batches.models import Batch, BatchState
from annotation_site.errors import NotFound
from annotation_site.generation.models import Checkpoint, CheckpointKind, Deployment, Engine
from annotation_site.runs import artifacts
from annotation_site.runs.models import RunStatus, TrainingRun
from annotation_site.runs.recipes import Report, recipe_values


def run_list() -> QuerySet[TrainingRun]:
    return TrainingRun.objects.select_related("launched_by", "checkpoint", "base_checkpoint").order_by("-created_at", "-id")


def run_get(run_id: int) -> TrainingRun:
    run = run_list().filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"There is no training run {run_id}.")
    return run


def chat_checkpoints() -> QuerySet[Checkpoint]:
    """Checkpoints a run can start from (every kind but reward models)."""
    return Checkpoint.objects.exclude(kind=CheckpointKind.REWARD_MODEL).order_by("-created_at", "-id")


def reward_model_checkpoints() -> QuerySet[Checkpoint]:
    return Checkpoint.objects.filter(kind=CheckpointKind.REWARD_MODEL).order_by("-created_at", "-id")


def judge_deployments() -> QuerySet[Deployment]:
    """Deployments a policy evaluation can ask as its judge: vLLM servers with an endpoint."""
    return Deployment.objects.filter(engine=Engine.VLLM).exclude(endpoint_url="").select_related("checkpoint")


def exported_batches() -> QuerySet[Batch]:
    return Batch.objects.filter(state=BatchState.EXPORTED).order_by("-week")


def comparable_reward_model_runs() -> QuerySet[TrainingRun]:
    return run_list().filter(recipe__in=recipe_values(report=Report.TABLE_8), status=RunStatus.SUCCEEDED)


@dataclass
class ComparisonRow:
    run: TrainingRun
    cells: list[float | None]  # accuracies in [0, 1], None where the run has no such split or rating
    average: float | None
    pairs: int = 0


@dataclass
class RewardModelComparison:
    """Accuracy of several reward models: per held-out split (Table 7) and per rating level within
    each split (Table 8), with the average over all scored pairs."""

    splits: list[str]
    rating_titles: list[str]
    by_split: list[ComparisonRow]
    by_rating: dict[str, list[ComparisonRow]] = field(default_factory=dict)
    missing_eval: list[TrainingRun] = field(default_factory=list)


def reward_model_comparison(runs: list[TrainingRun]) -> RewardModelComparison:
    # training.evaluation defines the paper's rating columns; imported here because it loads torch.
    from training.evaluation import RATING_TITLES

    results = {}
    missing = []
    for run in runs:
        evaluation = artifacts.eval_results(run)
        if evaluation is None or not isinstance(evaluation.get("splits"), dict):
            missing.append(run)
        else:
            results[run.pk] = evaluation["splits"]
    splits = sorted({name for splits in results.values() for name in splits})
    by_split, by_rating = [], {name: [] for name in splits}
    for run in runs:
        if run.pk not in results:
            continue
        run_splits = results[run.pk]
        pairs = sum(run_splits[name].get("pairs") or 0 for name in run_splits)
        correct = sum((run_splits[name].get("accuracy") or 0) * (run_splits[name].get("pairs") or 0) for name in run_splits)
        by_split.append(ComparisonRow(
            run, [run_splits.get(name, {}).get("accuracy") for name in splits], correct / pairs if pairs else None, pairs
        ))
        for name in splits:
            if name not in run_splits:
                continue
            levels = run_splits[name].get("by_rating") or {}
            by_rating[name].append(ComparisonRow(
                run, [levels.get(rating, {}).get("accuracy") for rating in RATING_TITLES],
                run_splits[name].get("accuracy"), run_splits[name].get("pairs") or 0,
            ))
    return RewardModelComparison(splits, list(RATING_TITLES.values()), by_split, by_rating, missing)
