"""Fixtures of the runs tests: users per role, a registered tiny base checkpoint, an exported
batch on disk, and run folders under a temporary CHECKPOINT_ROOT."""
from __future__ import annotations

import pytest

from annotation_site.accounts.services import user_create
from annotation_site.batches.models import Batch, BatchState
from annotation_site.generation.models import Checkpoint, CheckpointKind
from annotation_site.runs import services
from tests.training.rlhf_models import build_tiny_reward_model
from training.synthetic_batch import write_exported_batch

# Settings of the tiny recipes: a few steps on CPU in fp32, eval small.
TINY_SFT = ["batch_size=4", "per_device_batch_size=4", "epochs=1", "bf16=false", "eval_fraction=0.1", "learning_rate=3e-3"]
TINY_REWARD_MODEL = [
    "batch_size=4", "per_device_batch_size=4", "epochs=1", "bf16=false", "max_length=256",
    "learning_rate=3e-3", "eval_batch_size=8", "warmup_min_steps=0",
]
TINY_EVALUATION = ["engine=local", "max_new_tokens=8", "prompts_per_guideline=3", "temperature=1.0"]
# Every recipe of the site's table (runs/recipes.py), small enough for seconds on CPU.
TINY = {
    "reward_model": TINY_REWARD_MODEL,
    "sft": TINY_SFT,
    "rejection_sampling": [
        "engine=local", "iterations=2", "prompts_per_iteration=3", "samples_per_prompt=2", "max_new_tokens=8",
        "sft={epochs: 1, batch_size: 2, per_device_batch_size: 2, learning_rate: 1e-3, max_length: 256, bf16: false, eval_fraction: 0.0}",
    ],
    "ppo": [
        "iterations=2", "batch_size=4", "minibatch_size=2", "micro_batch_size=2", "generation_batch_size=4",
        "forward_batch_size=4", "max_new_tokens=8", "learning_rate=1e-3", "bf16=false",
    ],
    "grpo": ["num_generations=2", "batch_size=4", "per_device_batch_size=4", "max_steps=2", "max_new_tokens=8",
             "learning_rate=1e-3", "bf16=false"],
    "evaluate_policy": TINY_EVALUATION,
}


@pytest.fixture(autouse=True)
def runs_settings(settings, tmp_path, tmp_path_factory):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CHECKPOINT_ROOT = tmp_path / "checkpoints"
    # The session's temporary folder holds the tiny models; paths outside it are refused.
    settings.CHECKPOINT_ROOTS = [str(tmp_path_factory.getbasetemp())]
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.RUN_POLL_INTERVAL_S = 0.3
    settings.RUN_CANCEL_GRACE_S = 5
    settings.RUN_STALE_AFTER_S = 60
    settings.RUN_MAX_ATTEMPTS = 2
    settings.RUN_LAUNCHER = ""
    return settings


@pytest.fixture
def enqueued(monkeypatch) -> list[int]:
    """Run ids handed to the broker (outside the system under test): recorded, not sent."""
    from annotation_site.runs.tasks import run_training

    sent: list[int] = []
    monkeypatch.setattr(run_training, "delay", lambda run_id: sent.append(run_id))
    return sent


def make_user(role: str, username: str | None = None):
    return user_create(username=username or f"{role}-user", role=role, password="pw-123456")


@pytest.fixture
def researcher(db):
    return make_user("researcher")


@pytest.fixture
def base_checkpoint(db, tiny_model_dir) -> Checkpoint:
    return Checkpoint.objects.create(name="tiny-base", path=str(tiny_model_dir), kind=CheckpointKind.BASE)


@pytest.fixture
def exported_batch(db, settings) -> Batch:
    write_exported_batch(settings.EXPORT_ROOT / "2026-W48", n_train=16, n_test=8, batch="2026-W48")
    return Batch.objects.create(week="2026-W48", state=BatchState.EXPORTED, export_path=str(settings.EXPORT_ROOT / "2026-W48"))


@pytest.fixture
def evaluation_checkpoints(db, tiny_model_dir, tmp_path_factory):
    """Two chat checkpoints to compare (a tiny PPO policy and the tiny SFT model) and the two
    tiny reward models of eq. 3, registered."""
    from training.tiny_model import build_tiny_chat_model

    root = tmp_path_factory.mktemp("evaluation-checkpoints")
    return {
        "new": Checkpoint.objects.create(name="policy-new", path=str(build_tiny_chat_model(root / "new", seed=5)),
                                         kind=CheckpointKind.PPO),
        "old": Checkpoint.objects.create(name="policy-old", path=str(tiny_model_dir), kind=CheckpointKind.SFT),
        "helpfulness": Checkpoint.objects.create(
            name="rm-h", kind=CheckpointKind.REWARD_MODEL,
            path=str(build_tiny_reward_model(tiny_model_dir, root / "rm-h", seed=1))),
        "safety": Checkpoint.objects.create(
            name="rm-s", kind=CheckpointKind.REWARD_MODEL,
            path=str(build_tiny_reward_model(tiny_model_dir, root / "rm-s", seed=2))),
    }


def launch(researcher, *, recipe="sft", overrides=None, **kwargs):
    return services.run_launch(recipe=recipe, launched_by=researcher, overrides=TINY[recipe] + list(overrides or []), **kwargs)
