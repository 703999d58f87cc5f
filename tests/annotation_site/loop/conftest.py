"""Fixtures of the loop tests: a researcher, a deployed tiny chat model, exported batches, and a
loop definition whose steps run tiny recipes (a few steps, short answers) on CPU."""
from __future__ import annotations

import pytest

from annotation_site.batches.models import Batch, BatchState
from annotation_site.generation.models import Checkpoint, CheckpointKind, Deployment, Engine
from annotation_site.loop.models import LoopIteration, StepState
from annotation_site.loop.services.definitions import loop_version_save
from annotation_site.loop.services.iterations import iteration_advance
from annotation_site.runs.models import RunStatus, TrainingRun
from annotation_site.runs.tasks import run_training
from tests.annotation_site.runs.conftest import TINY_REWARD_MODEL, enqueued, make_user, runs_settings  # noqa: F401 - fixtures
from training.synthetic_batch import write_exported_batch

TINY_SFT = "{epochs: 1, batch_size: 4, per_device_batch_size: 4, bf16: false, eval_fraction: 0, max_length: 256, learning_rate: 1.0e-3}"
TINY_REJECTION_SAMPLING = ["engine=local", "samples_per_prompt=2", "max_new_tokens=8", "prompts_per_iteration=4",
                           "temperature=1.0", f"sft={TINY_SFT}"]
TINY_EVALUATION = ["engine=local", "max_new_tokens=8", "prompts_per_guideline=3", "temperature=1.0"]


def tiny_values(chat_checkpoint, **values) -> dict:
    """A loop version whose every step is a few seconds of CPU."""
    return {
        "guidelines": ["helpfulness", "safety"], "chat_checkpoint": chat_checkpoint,
        "helpfulness_config": "", "safety_config": "", "rejection_sampling_config": "", "evaluation_config": "",
        "ppo_config": "",
        "reward_model_overrides": [*TINY_REWARD_MODEL, "max_steps=2"],
        "rejection_sampling_overrides": TINY_REJECTION_SAMPLING,
        "evaluation_overrides": TINY_EVALUATION,
        "canary_share": 0.5, "canary_min_votes": 4, "canary_min_win_rate": 0.5,
        "trigger": "manual",
    } | values


@pytest.fixture
def researcher(db):
    return make_user("researcher")


@pytest.fixture
def chat_checkpoint(db, tiny_model_dir) -> Checkpoint:
    return Checkpoint.objects.create(name="tiny-chat", path=str(tiny_model_dir), kind=CheckpointKind.SFT)


@pytest.fixture
def deployed(chat_checkpoint) -> Deployment:
    """The policy serving today: the chat model on the local engine."""
    return Deployment.objects.create(checkpoint=chat_checkpoint, engine=Engine.LOCAL)


def exported(settings, week: str, *, seed: int = 0) -> Batch:
    folder = write_exported_batch(settings.EXPORT_ROOT / week, n_train=16, n_test=8, batch=week, seed=seed)
    return Batch.objects.create(week=week, state=BatchState.EXPORTED, export_path=str(folder))


@pytest.fixture
def batch(db, settings) -> Batch:
    return exported(settings, "2026-W48")


@pytest.fixture
def make_loop(researcher, chat_checkpoint):
    def make(name: str = "weekly", **values):
        return loop_version_save(name=name, values=tiny_values(chat_checkpoint, **values), actor=researcher).definition

    return make


def drive(iteration: LoopIteration, *, rounds: int = 20, stop=None) -> LoopIteration:
    """The engine with the training worker inline: advance, run what it queued, until it waits on
    nothing it can run here (or `stop(iteration)` holds)."""
    for _ in range(rounds):
        iteration_advance(iteration_id=iteration.pk)
        iteration.refresh_from_db()
        if stop is not None and stop(iteration):
            return iteration
        queued = list(TrainingRun.objects.filter(loop_steps__iteration=iteration, status=RunStatus.QUEUED).distinct())
        if not queued:
            return iteration
        for run in queued:
            run_training(run.pk)
    raise AssertionError(f"the iteration did not settle in {rounds} rounds: {iteration.state}")


def step_states(iteration: LoopIteration) -> dict[str, str]:
    return dict(iteration.steps.order_by("position").values_list("kind", "state"))


__all__ = ["StepState", "drive", "exported", "step_states", "tiny_values"]
