"""A checkpoint's lineage: where it came from and what came of it.

Everything is read from what the platform already stores: the parent links of the checkpoint
registry, the run that produced it (its resolved config names every data source and reward model
it used, whether the batches were picked in the launch form or listed in the config's own
`data:`), the policy evaluations whose config names it, its deployments, its samples and the
comparisons they are in, and its place on the leaderboard.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.db.models import Q

from annotation_site.annotation.models import Comparison, Sample
from annotation_site.batches.models import Batch
from annotation_site.batches.services import batch_folder
from annotation_site.errors import NotFound
from annotation_site.generation.models import Checkpoint, Deployment
from annotation_site.runs.artifacts import run_config
from annotation_site.runs.models import TrainingRun
from annotation_site.runs.recipes import BOTH_REWARD_MODELS, Report, recipe_values

# The parent chain stops here even if the registry has a cycle (a re-parenting mistake).
MAX_CHAIN = 100


@dataclass
class DataSource:
    path: str
    guidelines: list[str] | None
    batch: Batch | None  # the exported batch whose folder this is, if any


@dataclass
class Lineage:
    checkpoint: Checkpoint
    parents: list[Checkpoint]  # parent first, up to the base model
    run: TrainingRun | None
    recipe: str
    sources: list[DataSource]
    reward_models: dict[str, Checkpoint | str]  # helpfulness/safety -> registered checkpoint, else its path
    evaluations: list[TrainingRun]
    deployments: list[Deployment]
    children: list[Checkpoint]
    samples: int
    comparisons: int
    leaderboard_rank: int | None = None
    leaderboard_size: int = 0
    leaderboard_strength: float | None = None
    config: dict = field(default_factory=dict)


def checkpoint_lineage(*, checkpoint_id: int, with_leaderboard: bool = True) -> Lineage:
    checkpoint = Checkpoint.objects.select_related("parent").filter(pk=checkpoint_id).first()
    if checkpoint is None:
        raise NotFound(f"There is no checkpoint {checkpoint_id}.")
    parents, seen, parent = [], {checkpoint.pk}, checkpoint.parent
    while parent is not None and parent.pk not in seen and len(parents) < MAX_CHAIN:
        parents.append(parent)
        seen.add(parent.pk)
        parent = parent.parent
    run = TrainingRun.objects.filter(checkpoint=checkpoint).prefetch_related("batches").first()
    config = checkpoint.training_config or (run_config(run) if run else {})
    samples = Sample.objects.filter(checkpoint=checkpoint)
    lineage = Lineage(
        checkpoint=checkpoint, parents=parents, run=run, recipe=run.recipe if run else checkpoint.kind,
        sources=_sources(config.get("data")), reward_models=_reward_models(config),
        evaluations=evaluations_of(checkpoint), deployments=list(checkpoint.deployments.order_by("-created_at")),
        children=list(checkpoint.children.order_by("created_at")), samples=samples.count(),
        comparisons=Comparison.objects.filter(Q(chosen__checkpoint=checkpoint) | Q(rejected__checkpoint=checkpoint)).count(),
        config=config,
    )
    if with_leaderboard:
        from annotation_site.evaluation.selectors import CHECKPOINTS, leaderboard

        standings = leaderboard(bootstrap_rounds=100).boards[CHECKPOINTS].standings
        lineage.leaderboard_size = len(standings)
        for row in standings:
            if row.checkpoint_id == checkpoint.pk:
                lineage.leaderboard_rank, lineage.leaderboard_strength = row.rank, row.strength
    return lineage


def evaluations_of(checkpoint: Checkpoint) -> list[TrainingRun]:
    """Policy evaluation runs whose config names the checkpoint as `model` or in `against`."""
    found = []
    evaluations = TrainingRun.objects.filter(recipe__in=recipe_values(report=Report.POLICY_EVALUATION))
    for run in evaluations.filter(config_text__contains=checkpoint.path):
        config = run_config(run)
        if checkpoint.path == config.get("model") or checkpoint.path in (config.get("against") or []):
            found.append(run)
    return found


def _sources(data) -> list[DataSource]:
    """The config's data list, each source matched to the exported batch whose folder it is."""
    entries = data if isinstance(data, list) else []
    batches = {str(batch_folder(batch).resolve()): batch for batch in Batch.objects.all()}
    sources = []
    for entry in entries:
        path = entry.get("path") if isinstance(entry, dict) else entry
        if not isinstance(path, str):
            continue
        guidelines = entry.get("guidelines") if isinstance(entry, dict) else None
        sources.append(DataSource(path, guidelines, batches.get(str(Path(path).resolve()))))
    return sources


def _reward_models(config: dict) -> dict[str, Checkpoint | str]:
    found = {}
    for guideline in BOTH_REWARD_MODELS:
        path = config.get(f"{guideline}_reward_model")
        if isinstance(path, str) and path:
            found[guideline] = Checkpoint.objects.filter(path=path).first() or path
    return found
