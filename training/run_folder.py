"""What every training run writes besides its weights, and how it avoids looking complete when it is not.

A run writes into `<out>.tmp/` and renames it to `<out>/` only once the checkpoint, `config.yaml`,
`metrics.jsonl` and `eval.json` are all in place. A run that raises renames its folder to
`<out>.failed/` with `error.txt` (the traceback) beside its `train.log`, so the platform and a
person can both see that it failed and why; `<out>/` never exists for it.

A run given its config resumes from a state it saved earlier (training/resume.py): it keeps the
folder its earlier attempt wrote, `<out>.tmp/` or `<out>.failed/`, with the rows of its step logs
(STEP_LOGS) past the resumed step dropped: they are done again, and each step keeps one row.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from training.config import save_config
from training.resume import SavedState, discard_states, find_state, record_resume, resume_folder

logger = logging.getLogger("training")

# The files with one row per step (`step` or `iteration`), cut back to the resumed step on resume.
STEP_LOGS = ("metrics.jsonl", "samples.jsonl")


class RunFolder:
    """Context manager around a run: `<out>.tmp` while working, `<out>` when done, `<out>.failed` on error."""

    def __init__(self, out: str | Path, *, overwrite: bool = False, is_main_process: bool = True,
                 config: Any = None):
        self.out = Path(out)
        self.tmp = self.out.with_name(self.out.name + ".tmp")
        self.failed = self.out.with_name(self.out.name + ".failed")
        self.overwrite = overwrite
        self.is_main_process = is_main_process
        # With the run's config, a state it saved earlier is resumed (training/resume.py).
        self.config = config
        self.resume = resume_folder(self.out)
        self.resumed: SavedState | None = None
        self._log_handler: logging.Handler | None = None

    def __enter__(self) -> RunFolder:
        if self.out.exists() and not self.overwrite:
            raise FileExistsError(f"{self.out} already exists; choose another `out` or set overwrite=true")
        note = ""
        if self.config is not None:
            self.resumed, note = find_state(self.out, self.config, is_main_process=self.is_main_process)
        if self.is_main_process:
            if self.resumed is None:
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                self._keep_earlier_attempt(self.resumed.step)
            self.tmp.mkdir(parents=True, exist_ok=True)
            if self.resumed is not None:
                record_resume(self.tmp, self.resumed.step)
            self._log_handler = logging.FileHandler(self.tmp / "train.log")
            self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            for name in ("training", "transformers", "trl"):
                logging.getLogger(name).addHandler(self._log_handler)
        # The file gets every metrics row (DEBUG); the console only the run's own messages (INFO).
        logger.setLevel(logging.DEBUG)
        if not any(getattr(handler, "_training_console", False) for handler in logger.handlers):
            console = logging.StreamHandler()
            console.setLevel(logging.INFO)
            console.setFormatter(logging.Formatter("[training] %(message)s"))
            console._training_console = True
            logger.addHandler(console)
        if note:
            (logger.info if self.resumed else logger.warning)(note)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None and self.is_main_process:
            logger.error("run failed: %s: %s", exc_type.__name__, exc)
            (self.tmp / "error.txt").write_text("".join(traceback.format_exception(exc_type, exc, tb)))
            self._close_log()
            shutil.rmtree(self.failed, ignore_errors=True)
            self.tmp.rename(self.failed)
            logger.error("logs and traceback are in %s", self.failed)
        self._close_log()
        return False

    @property
    def resume_checkpoint(self) -> str | None:
        """The saved state to continue from, as the Trainer's `resume_from_checkpoint` takes it."""
        return str(self.resumed.path) if self.resumed else None

    def _keep_earlier_attempt(self, step: int) -> None:
        """Take back the folder of the attempt being resumed, its step logs cut back to `step`."""
        if not self.tmp.is_dir() and self.failed.is_dir():
            self.failed.rename(self.tmp)
            (self.tmp / "error.txt").unlink(missing_ok=True)
        for name in STEP_LOGS:
            path = self.tmp / name
            if path.is_file():
                kept = [row for row in read_metrics(path) if row.get("step", row.get("iteration", 0)) <= step]
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_text("".join(json.dumps(row) + "\n" for row in kept))
                tmp.replace(path)

    def save_config(self, config: Any) -> None:
        if self.is_main_process:
            save_config(config, self.tmp / "config.yaml")

    def write_json(self, name: str, data: Any) -> None:
        if self.is_main_process:
            (self.tmp / name).write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")

    def finish(self) -> Path:
        """Rename the finished run into place and return the checkpoint folder."""
        if self.is_main_process:
            self._close_log()
            if self.out.exists():
                shutil.rmtree(self.out)
            self.tmp.rename(self.out)
            shutil.rmtree(self.failed, ignore_errors=True)
            discard_states(self.out)
        return self.out

    def _close_log(self) -> None:
        if self._log_handler is not None:
            for name in ("training", "transformers", "trl"):
                logging.getLogger(name).removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None


class MetricsFile(TrainerCallback):
    """Appends one JSON line per logging step to `metrics.jsonl`: step, loss, lr, recipe metrics, tokens/s.

    Tokens/s comes from the non-padding token count TRL's trainers already keep (`num_tokens`), so
    measuring it costs nothing per step.
    """

    def __init__(self, path: Path, *, extra: dict[str, Any] | None = None):
        self.path = path
        self.extra = extra or {}
        self._last = (0.0, 0)

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = (time.perf_counter(), 0)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or not {"loss", "eval_loss", "train_loss"} & set(logs):
            return
        row: dict[str, Any] = {"step": state.global_step, "epoch": state.epoch}
        row.update({key: value for key, value in logs.items() if isinstance(value, int | float)})
        if "learning_rate" in row:
            row["lr"] = row["learning_rate"]
        if "num_tokens" in logs:
            now, tokens = time.perf_counter(), int(logs["num_tokens"])
            row["tokens_per_s"] = (tokens - self._last[1]) / max(now - self._last[0], 1e-9)
            self._last = (now, tokens)
        row.update(self.extra)
        logger.debug("metrics %s", row)
        with self.path.open("a") as file:
            file.write(json.dumps(row) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL log; a last line cut short by a kill is left out."""
    rows = []
    for line in path.read_text().splitlines() if path.exists() else ():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def train_summary(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """The trainer's end-of-training figures (mean train loss, runtime) from metrics.jsonl rows."""
    row = next((row for row in reversed(metrics) if "train_loss" in row), {})
    return {key: row[key] for key in ("train_loss", "train_runtime", "train_samples_per_second") if key in row}


def plot_loss_curve(metrics: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """Training (and eval) loss against step, as a PNG; None when nothing was logged."""
    train = [(row["step"], row["loss"]) for row in metrics if "loss" in row]
    evaluation = [(row["step"], row["eval_loss"]) for row in metrics if "eval_loss" in row]
    if not train and not evaluation:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for points, label in ((train, "train loss"), (evaluation, "eval loss")):
        if points:
            axes.plot(*zip(*points), marker="o" if len(points) < 30 else None, label=label)
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 instructions (avx512_bf16 or AMX), where bf16 training is fast."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision_args(bf16: bool | None) -> dict[str, Any]:
    """Trainer arguments for the device: CPU runs need `use_cpu`; bf16 only where the hardware has it.

    TRL's configs default to bf16=True, which on a CPU without bf16 instructions is several times
    slower than fp32, so `bf16: null` (auto) picks it only on a bf16 GPU or a CPU with bf16 units.
    """
    on_gpu = torch.cuda.is_available()
    if bf16 is None:
        bf16 = torch.cuda.is_bf16_supported() if on_gpu else cpu_has_bf16()
    return {"use_cpu": not on_gpu, "bf16": bf16, "fp16": False}


def with_resolved_precision(config: Any) -> Any:
    """`config` with `bf16: null` (auto) replaced by what it resolves to here, so the run's saved
    config.yaml says which precision it trained in."""
    import dataclasses

    return dataclasses.replace(config, bf16=precision_args(config.bf16)["bf16"])


def accumulation_steps(batch_size: int, per_device_batch_size: int) -> int:
    """Gradient-accumulation steps that make `batch_size` examples a step on all processes together."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))  # set by accelerate launch / torchrun
    accumulation = max(1, round(batch_size / (per_device_batch_size * world_size)))
    if accumulation * per_device_batch_size * world_size != batch_size:
        logger.warning(
            "batch_size %d is not a multiple of per_device_batch_size %d x %d processes; training with %d a step",
            batch_size, per_device_batch_size, world_size, accumulation * per_device_batch_size * world_size,
        )
    return accumulation


def warmup_steps(total_steps: int, *, ratio: float = 0.03, minimum: int = 5) -> int:
    """Warm-up of the paper's reward models (§3.2.2): 3% of the steps, at least 5 (never all of them)."""
    import math

    return min(max(minimum, math.ceil(ratio * total_steps)), max(total_steps - 1, 0))


def state_saving_args(run: RunFolder, save_state_every: int) -> dict[str, Any]:
    """TrainingArguments that make the Trainer save a resumable state (model, optimizer, scheduler,
    RNG, data position) every `save_state_every` steps into the run's `<out>.resume/`, keeping the
    newest only (0: never); `trainer.train(resume_from_checkpoint=run.resume_checkpoint)` continues."""
    if save_state_every <= 0:
        return {"output_dir": str(run.resume), "save_strategy": "no"}
    return {"output_dir": str(run.resume), "save_strategy": "steps", "save_steps": save_state_every, "save_total_limit": 1}
