"""What a run leaves on disk, read for the dashboard: progress, metrics, eval.json, plots, log tail.

Layout of CHECKPOINT_ROOT/runs/<id>/: `launch.yaml` (the resolved config the recipe is started
with), `run.log` (the recipe's stdout and stderr, every attempt) and the recipe's own output
folder `checkpoint/`, which is `checkpoint.tmp/` while it trains and `checkpoint.failed/` (with
error.txt) if it raised (training/run_folder.py), and beside it `checkpoint.resume/`, the
resumable state the recipe saves every `save_state_every` steps (training/resume.py), which a
restarted attempt continues from and a finished run deletes.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml
from django.conf import settings

from annotation_site.runs.models import TrainingRun
from annotation_site.runs.recipes import site_recipe
from training.resume import last_resume, saved_step

LOG_TAIL_LINES = 40
# Plots are served by name from the run's folder; only plain PNG names qualify.
PLOT_NAME = re.compile(r"^[\w.-]+\.png$")


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def launch_config(self) -> Path:
        return self.root / "launch.yaml"

    @property
    def log(self) -> Path:
        return self.root / "run.log"

    @property
    def out(self) -> Path:
        return self.root / "checkpoint"

    @property
    def tmp(self) -> Path:
        return self.root / "checkpoint.tmp"

    @property
    def failed(self) -> Path:
        return self.root / "checkpoint.failed"

    def saved_step(self) -> int | None:
        """The step of the newest resumable state the recipe saved, which its next start continues from."""
        return saved_step(self.out)

    def resumed_from(self, since: datetime | None) -> int | None:
        """The step the recipe said it resumed from (its resumes.json), if it did so at or after `since`."""
        resume = last_resume(self.artifacts())
        return resume[0] if resume and since and resume[1] >= since else None

    def artifacts(self) -> Path | None:
        """The folder holding the run's metrics and plots now: finished, in progress, or failed."""
        return next((folder for folder in (self.out, self.tmp, self.failed) if folder.is_dir()), None)


def run_paths(run: TrainingRun) -> RunPaths:
    return RunPaths(Path(run.output_dir) if run.output_dir else Path(settings.CHECKPOINT_ROOT).resolve() / "runs" / str(run.pk))


def read_metrics(folder: Path | None) -> list[dict]:
    """The rows of metrics.jsonl; a last line still being written is left out."""
    path = folder / "metrics.jsonl" if folder else None
    if path is None or not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _last_metrics_row(folder: Path | None) -> dict | None:
    """The last complete row of metrics.jsonl, reading only the file's end (it can grow long)."""
    path = folder / "metrics.jsonl" if folder else None
    if path is None or not path.is_file():
        return None
    with path.open("rb") as file:
        file.seek(0, 2)
        file.seek(max(0, file.tell() - 65536))
        lines = file.read().decode(errors="replace").splitlines()
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            return row
    return None


def run_config(run: TrainingRun) -> dict:
    try:
        config = yaml.safe_load(run.config_text or "")
    except yaml.YAMLError:
        return {}
    return config if isinstance(config, dict) else {}


def total_steps(run: TrainingRun, folder: Path | None) -> int | None:
    """Steps the run will take: the count the recipe computed once it knew its data (data.json),
    else its row's total key in the config (max_steps, iterations; runs/recipes.py)."""
    data_file = folder / "data.json" if folder else None
    if data_file and data_file.is_file():
        try:
            return int(json.loads(data_file.read_text())["total_steps"])
        except (ValueError, KeyError, TypeError):
            pass
    key = site_recipe(run.recipe).total_key
    total = run_config(run).get(key) if key else None
    return total if isinstance(total, int) and total > 0 else None


def progress(run: TrainingRun) -> tuple[int, int | None]:
    """(steps done, total steps or None) from the last metrics row's progress key (step, iteration)."""
    folder = run_paths(run).artifacts()
    row = _last_metrics_row(folder) or {}
    step = row.get(site_recipe(run.recipe).progress_key, 0)
    return (int(step) if isinstance(step, int | float) else 0), total_steps(run, folder)


def log_tail(run: TrainingRun, lines: int = LOG_TAIL_LINES) -> str:
    path = run_paths(run).log
    if not path.is_file():
        return ""
    with path.open("rb") as file:
        file.seek(0, 2)
        file.seek(max(0, file.tell() - 200 * lines))
        text = file.read().decode(errors="replace")
    # Progress bars redraw with carriage returns; show each bar's latest state only.
    tail = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    return "\n".join(tail[-lines:])


def error_summary(run: TrainingRun) -> str:
    """The exception a failed recipe raised (last line of its error.txt), if it got that far."""
    error_file = run_paths(run).failed / "error.txt"
    if not error_file.is_file():
        return ""
    lines = [line for line in error_file.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def eval_results(run: TrainingRun) -> dict | None:
    folder = run_paths(run).artifacts()
    path = folder / "eval.json" if folder else None
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def pool_path(run: TrainingRun) -> Path | None:
    """The pooled best answers a finished rejection-sampling run kept (pool.jsonl), if any."""
    path = run_paths(run).out / "pool.jsonl"
    return path if run.recipe == "rejection_sampling" and path.is_file() else None


def plot_names(run: TrainingRun) -> list[str]:
    """The PNG plots the recipe wrote (loss_curve.png, reward_distribution.png, curves.png, ...)."""
    folder = run_paths(run).artifacts()
    if folder is None:
        return []
    return sorted(path.name for path in folder.glob("*.png") if PLOT_NAME.match(path.name))


def plot_path(run: TrainingRun, name: str) -> Path | None:
    folder = run_paths(run).artifacts()
    if folder is None or not PLOT_NAME.match(name) or not (folder / name).is_file():
        return None
    return folder / name
