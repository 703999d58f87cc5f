"""Resumable state of a long run, so a run whose process died continues instead of starting over.

Every `save_state_every` steps a recipe saves what it needs to go on into `<out>.resume/`, beside
the half-written `<out>.tmp/` (training/run_folder.py): the model, the optimizer, the scheduler,
the RNG states, the step, and whatever else the recipe carries (rejection sampling's pool). When the
same config starts again, `RunFolder(config=...)` finds the newest complete state (`find_state`),
keeps what the run had written up to its step (metrics.jsonl keeps each step once), records the
resume in the run folder's `resumes.json` and hands the state to the recipe as `run.resumed`,
which continues from it. A finished run deletes `<out>.resume/`.

Layout of `<out>.resume/`:

- `config.sha256`: the fingerprint of the resolved config the states belong to; a state of another
  config is never resumed (the folder is emptied and the run starts over, saying so);
- `checkpoint-<step>/`: one state. The trainer recipes (reward model, SFT, GRPO) let
  `transformers.Trainer` write it (`save_steps`, `resume_from_checkpoint`: model, optimizer,
  scheduler, RNG, data position); it is complete once its `trainer_state.json` names its step, the
  file the Trainer writes last. The hand-written loops (PPO, rejection sampling) write theirs with
  `save_state`: into `checkpoint-<step>.tmp/` ending with `state.json`, renamed when complete, so
  a kill during the save leaves the previous state in place.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("training")

FINGERPRINT_FILE = "config.sha256"
# In the run folder (so the finished checkpoint keeps it): every resume, {"step", "at"}, oldest first.
RESUMES_FILE = "resumes.json"
TRAINER_STATE_FILE = "trainer_state.json"  # transformers' TRAINER_STATE_NAME
STATE_FILE = "state.json"  # what save_state writes last: the step, for a person reading the folder
STATE_NAME = re.compile(r"^checkpoint-(\d+)$")
# Keys that change how a run is kept, not what it computes: a state survives a change of them.
NOT_FINGERPRINTED = frozenset({"save_state_every", "overwrite"})


def resume_folder(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".resume")


def config_fingerprint(config: Any) -> str:
    """SHA-256 of the resolved config (a dataclass), without the keys of NOT_FINGERPRINTED."""
    values = {key: value for key, value in dataclasses.asdict(config).items() if key not in NOT_FINGERPRINTED}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class SavedState:
    step: int
    path: Path


def _complete_states(folder: Path) -> list[SavedState]:
    """The complete states in `folder`, oldest first."""
    states = []
    for path in folder.iterdir() if folder.is_dir() else ():
        match = STATE_NAME.match(path.name)
        if not match or not path.is_dir():
            continue
        step = int(match.group(1))
        # A Trainer checkpoint is complete once its trainer_state.json (written last) names its
        # step; a save_state folder once it has its state.json (it was renamed into place after).
        for name, key in ((TRAINER_STATE_FILE, "global_step"), (STATE_FILE, "step")):
            try:
                if json.loads((path / name).read_text()).get(key) == step:
                    states.append(SavedState(step, path))
                    break
            except (json.JSONDecodeError, OSError):
                continue
    return sorted(states, key=lambda state: state.step)


def saved_step(out: str | Path) -> int | None:
    """The step of the newest complete state of the run writing `out`, if any (for the dashboard)."""
    states = _complete_states(resume_folder(out))
    return states[-1].step if states else None


def find_state(out: str | Path, config: Any, *, is_main_process: bool = True) -> tuple[SavedState | None, str]:
    """The newest complete state saved by a run of this same config (None: start from step 0), and
    what to log about it.

    A state of a different config is not resumed: the main process empties the folder and the run
    starts over. Either way the folder is left holding this config's fingerprint, ready for
    `save_state` and the Trainer's checkpoints. (The fingerprint is read before the states are
    listed and written after they are deleted, so every process of a distributed run decides alike.)
    """
    folder = resume_folder(out)
    fingerprint = config_fingerprint(config)
    fingerprint_file = folder / FINGERPRINT_FILE
    stored = fingerprint_file.read_text().strip() if fingerprint_file.is_file() else None
    states = _complete_states(folder)
    if stored == fingerprint and states:
        return states[-1], f"resumed from step {states[-1].step} (the state saved in {states[-1].path})"
    message = ""
    if states:
        message = (f"the state saved at step {states[-1].step} in {folder} belongs to another config; "
                   "starting over from step 0")
    if is_main_process:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        _write_atomically(fingerprint_file, fingerprint + "\n")
    return None, message


def save_state(out: str | Path, step: int, write: Callable[[Path], None]) -> Path:
    """Write a state of `step` with `write(folder)`, atomically, and drop the older states.

    `write` fills a fresh `checkpoint-<step>.tmp/`, which is renamed to `checkpoint-<step>/` only once
    it returns: a kill during the save leaves the previous state the newest complete one.
    """
    folder = resume_folder(out)
    final = folder / f"checkpoint-{step}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    (tmp / STATE_FILE).write_text(json.dumps({"step": step}) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for state in _complete_states(folder):
        if state.step != step:
            shutil.rmtree(state.path, ignore_errors=True)
    logger.info("saved a resumable state at step %d in %s", step, final)
    return final


def record_resume(run_folder: Path, step: int) -> None:
    """Add a resume from `step` to the run folder's resumes.json, for the platform and a reader."""
    path = run_folder / RESUMES_FILE
    resumes = json.loads(path.read_text()) if path.is_file() else []
    resumes.append({"step": step, "at": datetime.datetime.now(datetime.timezone.utc).isoformat()})
    _write_atomically(path, json.dumps(resumes, indent=2) + "\n")


def last_resume(run_folder: Path | None) -> tuple[int, datetime.datetime] | None:
    """(step, when) of the latest resume recorded in a run folder, if it ever resumed."""
    path = run_folder / RESUMES_FILE if run_folder else None
    try:
        resumes = json.loads(path.read_text()) if path and path.is_file() else []
        return (int(resumes[-1]["step"]), datetime.datetime.fromisoformat(resumes[-1]["at"])) if resumes else None
    except (ValueError, KeyError, TypeError, IndexError, OSError):
        return None


def discard_states(out: str | Path) -> None:
    """Delete the run's saved states: it finished, nothing is left to resume."""
    shutil.rmtree(resume_folder(out), ignore_errors=True)


def rng_state() -> dict:
    """The states of every random number generator a recipe draws from: Python, NumPy, torch (CPU, CUDA)."""
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
