"""The paper's progress figures, from what the runs left on disk.

- Fig. 6 layout: reward-model accuracy on the held-out splits against the number of batches the
  reward model trained on, one line per base model and guideline (the paper's lines are model
  sizes), from the reward-model runs' `eval.json`.
- Fig. 20 layout: the reward distribution per policy version on the same prompts: the latest policy
  evaluation's `reward_distribution.png`.
- Fig. 11 layout: the win rate of each policy version against one fixed reference checkpoint, by
  the reward models (combined reward of eq. 3-4) and by the judge, from every policy evaluation
  that compared the version with the reference.

matplotlib's object API (no pyplot state) is safe to use from several request threads.
"""
from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass

from annotation_site.runs import artifacts
from annotation_site.runs.models import RunStatus, TrainingRun
from annotation_site.runs.recipes import Report, recipe_values

GUIDELINES = ("helpfulness", "safety")


@dataclass
class AccuracyPoint:
    line: str  # "<base model> / <guideline>"
    batches: int
    accuracy: float
    pairs: int
    run_id: int


@dataclass
class WinRatePoint:
    version: str
    path: str
    run_id: int
    reward_model: float | None  # win rate against the reference, ties counting half
    judge: float | None
    prompts: int


def reward_model_accuracy_points() -> list[AccuracyPoint]:
    points = []
    runs = TrainingRun.objects.filter(recipe__in=recipe_values(report=Report.TABLE_8), status=RunStatus.SUCCEEDED).select_related(
        "base_checkpoint").prefetch_related("batches").order_by("created_at", "id")
    for run in runs:
        evaluation = artifacts.eval_results(run) or {}
        splits = evaluation.get("splits") if isinstance(evaluation.get("splits"), dict) else {}
        base = run.base_checkpoint.name if run.base_checkpoint else "unregistered base"
        for guideline in GUIDELINES:
            scored = [split for name, split in splits.items() if name.endswith(f"/{guideline}") and split.get("pairs")
                      and split.get("accuracy") is not None]
            pairs = sum(split["pairs"] for split in scored)
            if pairs:
                accuracy = sum(split["accuracy"] * split["pairs"] for split in scored) / pairs
                points.append(AccuracyPoint(f"{base} / {guideline}", run.batches.count(), accuracy, pairs, run.pk))
    return points


def evaluation_runs() -> list[tuple[TrainingRun, dict]]:
    """Succeeded policy evaluations with their report, oldest first."""
    found = []
    runs = TrainingRun.objects.filter(recipe__in=recipe_values(report=Report.POLICY_EVALUATION), status=RunStatus.SUCCEEDED)
    for run in runs.order_by("created_at", "id"):
        report = artifacts.eval_results(run)
        if report and isinstance(report.get("pairs"), list) and isinstance(report.get("versions"), list):
            found.append((run, report))
    return found


def default_reference(evaluations: list[tuple[TrainingRun, dict]]) -> str | None:
    """The checkpoint path most often compared with as a baseline."""
    counts = Counter(version["path"] for _, report in evaluations for version in report["versions"]
                     if version.get("role") == "baseline")
    return counts.most_common(1)[0][0] if counts else None


def win_rates_against(reference: str, evaluations: list[tuple[TrainingRun, dict]]) -> list[WinRatePoint]:
    """Each version's win rate over all prompts against `reference` (a checkpoint path), by run."""
    points = []
    for run, report in evaluations:
        labels = {version["label"]: version["path"] for version in report["versions"]}
        for row in report["pairs"]:
            if row.get("guideline") != "all" or reference not in (labels.get(row["a"]), labels.get(row["b"])):
                continue
            flipped = labels.get(row["a"]) == reference
            version = row["b"] if flipped else row["a"]

            def rate(scorer: str) -> float | None:
                value = (row.get(scorer) or {}).get("win_rate")
                return None if value is None else (1 - value if flipped else value)

            points.append(WinRatePoint(version, labels[version], run.pk, rate("combined"), rate("judge"),
                                       row["combined"]["prompts"]))
    return points


def accuracy_png(points: list[AccuracyPoint]) -> bytes | None:
    if not points:
        return None
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot(1, 1, 1)
    for line in sorted({point.line for point in points}):
        mine = sorted((p.batches, p.accuracy) for p in points if p.line == line)
        axes.plot(*zip(*mine), marker="o", label=line)
    axes.set_xlabel("batches trained on")
    axes.set_ylabel("accuracy on the held-out splits")
    axes.set_title("Reward-model accuracy as batches accumulate (Fig. 6 layout)", fontsize=10)
    axes.legend(fontsize=8)
    return _png(figure)


def win_rate_png(points: list[WinRatePoint], reference_label: str) -> bytes | None:
    if not points:
        return None
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(6, 0.9 * len(points) + 2), 4))
    axes = figure.add_subplot(1, 1, 1)
    xs = list(range(len(points)))
    for key, label in (("reward_model", "reward models (combined reward)"), ("judge", "judge")):
        values = [(x, getattr(point, key)) for x, point in zip(xs, points) if getattr(point, key) is not None]
        if values:
            axes.plot(*zip(*values), marker="o", label=label)
    axes.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    axes.set_xticks(xs)
    axes.set_xticklabels([f"{point.version}\n(run {point.run_id})" for point in points], fontsize=8)
    axes.set_ylim(0, 1)
    axes.set_ylabel(f"win rate against {reference_label}")
    axes.set_title("Win rate of each version against a fixed reference (Fig. 11 layout)", fontsize=10)
    axes.legend(fontsize=8)
    return _png(figure)


def _png(figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()
