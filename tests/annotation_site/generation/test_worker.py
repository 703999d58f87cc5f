"""The fill task on a real Celery worker process and the real Redis broker (never eager mode).

The "web" side runs in a `manage.py shell` subprocess: an annotator writes a prompt, the
`items_need_samples` signal enqueues `fill_queue` on Redis, and the worker, with the tiny model
loaded in its local engine, generates the pair while the test only watches the database.
"""
from __future__ import annotations

import os

import pytest

from annotation_site.annotation.models import Item, ItemStatus
from tests.annotation_site.generation.conftest import WRITE_A_PROMPT, deploy_local, wait_until_ready
from tests.conftest import require
from tests.support.site_processes import CeleryWorker, redis_is_up, run_site, site_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

BROKER_URL = os.environ.get("GENERATION_TEST_BROKER_URL", "redis://127.0.0.1:6379/3")


@pytest.fixture
def worker_env(postgres, tmp_path):
    require(redis_is_up(BROKER_URL), f"needs Redis at {BROKER_URL}")
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()  # this area's own Redis database: no stale tasks
    return site_env(
        broker_url=BROKER_URL,
        drop_prefixes=("GENERATION_",),
        VAR_DIR=str(tmp_path / "var"),
        GENERATION_READY_TARGET="0",  # only the signal asks for the new prompt's pair
        GENERATION_MAX_TOKENS="8",
        GENERATION_SEED="0",  # what the random tiny model writes is the same on every run
    )


def test_a_written_prompt_gets_its_pair_from_a_real_worker(worker_env, tiny_model_dir, tmp_path):
    deploy_local(tiny_model_dir)
    log = tmp_path / "worker.log"
    worker = CeleryWorker(worker_env, log)
    try:
        item_id = int(run_site(worker_env, WRITE_A_PROMPT))
        wait_until_ready(item_id, [worker], timeout=180)
    finally:
        worker.stop()
    item = Item.objects.select_related("sample_a", "sample_b").get(pk=item_id)
    assert item.status == ItemStatus.READY, log.read_text(errors="replace")[-3000:]
    assert item.sample_a.sampling_params["engine"] == "local" and item.sample_b.text.strip()
    assert "fill_queue" in log.read_text(errors="replace")
