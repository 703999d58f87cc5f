"""Active selection across real processes: the site's worker fills the queue with candidates, the
training worker's reward models choose the pair (never eager mode, the real Redis broker)."""
from __future__ import annotations

import os

import pytest

from annotation_site.annotation.models import Item, ItemStatus
from annotation_site.generation.models import Checkpoint, CheckpointKind
from tests.annotation_site.generation.conftest import WRITE_A_PROMPT, deploy_local, wait_until_ready
from tests.conftest import require
from tests.support.site_processes import CeleryWorker, redis_is_up, run_site, site_env
from tests.training.rlhf_models import build_tiny_reward_model

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BROKER_URL = os.environ.get("GENERATION_TEST_BROKER_URL", "redis://127.0.0.1:6379/3")


def test_a_written_prompt_gets_the_pair_the_training_workers_reward_model_chose(postgres, tiny_model_dir, tmp_path):
    require(redis_is_up(BROKER_URL), f"needs Redis at {BROKER_URL}")
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()
    env = site_env(
        broker_url=BROKER_URL, drop_prefixes=("GENERATION_", "SELECTION_"), VAR_DIR=str(tmp_path / "var"),
        GENERATION_READY_TARGET="0", GENERATION_MAX_TOKENS="8", GENERATION_SEED="0",
        SELECTION_POLICY="uncertainty", SELECTION_CANDIDATES="3", SELECTION_RANDOM_SHARE="0",
    )
    deploy_local(tiny_model_dir)
    rm = build_tiny_reward_model(tiny_model_dir, tmp_path / "rm-helpfulness", seed=3)
    Checkpoint.objects.create(name="rm-helpfulness-v1", path=str(rm), kind=CheckpointKind.REWARD_MODEL)
    site_log, training_log = tmp_path / "worker.log", tmp_path / "training.log"
    site_worker = CeleryWorker(env, site_log)
    training_worker = CeleryWorker(env, training_log, queues="training")
    try:
        item_id = int(run_site(env, WRITE_A_PROMPT))
        wait_until_ready(item_id, [site_worker, training_worker], timeout=240)
    finally:
        site_worker.stop()
        training_worker.stop()
    item = Item.objects.get(pk=item_id)
    assert item.status == ItemStatus.READY, training_log.read_text(errors="replace")[-3000:]
    assert item.selection["policy"] == "uncertainty" and item.selection["reward_models"] == ["rm-helpfulness-v1"]
    assert len(item.selection["candidates"]) == 3
    # Each worker did its half: generation on the site's queue, scoring on the training queue.
    ran = "annotation_site.generation.tasks.select_pairs["
    assert ran in training_log.read_text(errors="replace") and ran not in site_log.read_text(errors="replace")
    assert "annotation_site.generation.tasks.fill_queue[" in site_log.read_text(errors="replace")
