"""Exports on a real Celery worker process and the real Redis broker (never eager mode).

Every process here is real: the worker is `celery -A annotation_site worker` and the "web" side
(closing a batch, annotators submitting) runs in `manage.py shell` subprocesses, each pointed at
this test's PostgreSQL database and at its own broker URL, so a broker outage is a real closed port.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from annotation_site.annotation.models import Comparison
from annotation_site.batches import services
from annotation_site.batches.models import Batch, BatchState
from tests.annotation_site.batches.factories import make_annotator, make_comparison, make_item, make_mixed_week
from tests.conftest import require
from tests.support import site_processes
from tests.support.site_processes import CeleryWorker, redis_is_up, run_site

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

BROKER_URL = os.environ.get("BATCHES_TEST_BROKER_URL", "redis://127.0.0.1:6379/2")
CLOSED_PORT_BROKER = "redis://127.0.0.1:1/2"


@pytest.fixture
def site_env(postgres, tmp_path):
    require(redis_is_up(BROKER_URL), f"needs Redis at {BROKER_URL}")
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()  # this area's own Redis database: no stale tasks
    return site_processes.site_env(
        broker_url=BROKER_URL,
        drop_prefixes=("BATCH_",),
        EXPORT_ROOT=str(tmp_path / "exports"),
        VAR_DIR=str(tmp_path / "var"),
        CODE_VERSION=services.code_version(),
    )


@pytest.fixture
def start_worker(site_env, tmp_path):
    workers = []

    def start(**extra) -> CeleryWorker:
        worker = CeleryWorker({**site_env, **extra}, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def wait_for_batch(batch_id: int, *, until, timeout: float = 60) -> Batch:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = Batch.objects.get(pk=batch_id)
        if until(batch):
            return batch
        time.sleep(0.1)
    raise AssertionError(f"batch never reached the expected state: {Batch.objects.filter(pk=batch_id).values()[0]}")


def checksums(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


CLOSE = "from annotation_site.batches import services; b, _ = services.batch_close(); print(b.id)"


def test_a_real_worker_on_redis_exports_the_closed_batch(site_env, start_worker, tmp_path):
    made = make_mixed_week(annotators=2, per_annotator=5)
    start_worker()
    batch_id = int(run_site(site_env, CLOSE))  # the close enqueues the export on commit
    batch = wait_for_batch(batch_id, until=lambda b: b.state == BatchState.EXPORTED)
    folder = Path(batch.export_path)
    assert folder == Path(site_env["EXPORT_ROOT"]) / batch.week
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["comparisons"] == len(made)
    assert all(checksums(folder)[name] == entry["sha256"] for name, entry in manifest["files"].items())
    assert batch.export_attempts == 1 and batch.export_enqueued_at is not None


def test_a_worker_killed_mid_export_leaves_no_batch_folder_and_the_retry_writes_the_same_files(
    site_env, start_worker, tmp_path, settings
):
    people = [make_annotator() for _ in range(3)]
    for index in range(40):
        make_comparison(annotator=people[index % 3], rating=("better", "slightly_better")[index % 2])
    # Slow the export down (2 rows a chunk, 0.25 s a chunk: about 5 s) so it can be killed mid-way.
    worker = start_worker(BATCH_EXPORT_CHUNK_SIZE="2", BATCH_EXPORT_PAUSE_PER_CHUNK_S="0.25")
    batch_id = int(run_site(site_env, CLOSE))
    batch = wait_for_batch(batch_id, until=lambda b: b.state == BatchState.EXPORTING and 0.1 < b.export_progress < 0.5)
    final = Path(site_env["EXPORT_ROOT"]) / batch.week
    [child] = worker.pool_children()
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert not final.exists(), "a killed export must not leave a batch folder"
    assert batch.export_attempts == 1

    # acks_late + reject_on_worker_lost: the broker hands the task out again and it starts over.
    batch = wait_for_batch(batch_id, until=lambda b: b.state == BatchState.EXPORTED, timeout=90)
    assert batch.export_attempts == 2
    assert sorted(p.name for p in final.parent.iterdir()) == [batch.week], "no partial folder left behind"
    manifest = json.loads((final / "manifest.json").read_text())
    assert manifest["comparisons"] == 40
    assert all(checksums(final)[name] == entry["sha256"] for name, entry in manifest["files"].items())
    settings.CODE_VERSION = site_env["CODE_VERSION"]
    services.code_version.cache_clear()
    try:
        services.batch_write_copy(batch=batch, out_dir=tmp_path / "reference")
    finally:
        services.code_version.cache_clear()
    assert checksums(final) == checksums(tmp_path / "reference")


SUBMIT_CLOSE_SUBMIT = """
import json
from django.contrib.auth import get_user_model
from annotation_site.batches import services
from annotation_site.batches.models import Batch
from tests.annotation_site.batches.factories import submit_through_annotation
people = list(get_user_model().objects.order_by("id"))
before = [submit_through_annotation(person).id for person in people[:3]]
batch, _ = services.batch_close()
after = [submit_through_annotation(person).id for person in people[3:]]
batch.refresh_from_db()
print(json.dumps({"batch": batch.id, "before": before, "after": after, "error": batch.export_error}))
"""


def test_with_redis_down_annotators_still_submit_and_the_export_runs_once_it_is_back(site_env, start_worker):
    people = [make_annotator() for _ in range(5)]
    for _ in people:
        make_item()
    started = time.monotonic()
    report = json.loads(run_site(site_env, SUBMIT_CLOSE_SUBMIT, CELERY_BROKER_URL=CLOSED_PORT_BROKER))
    assert time.monotonic() - started < 60
    assert "Could not reach the task broker" in report["error"]
    batch = Batch.objects.get(pk=report["batch"])
    assert batch.state == BatchState.CLOSED and batch.export_enqueued_at is None
    assert sorted(batch.comparisons.values_list("id", flat=True)) == sorted(report["before"])
    assert Comparison.objects.filter(pk__in=report["after"], batch__isnull=True).count() == 2

    # Redis is back: beat's watchdog task enqueues the export that never started.
    start_worker()
    resumed = run_site(site_env, "from annotation_site.batches.tasks import batch_exports_resume; print(batch_exports_resume.run())")
    assert json.loads(resumed) == [batch.id]
    batch = wait_for_batch(batch.id, until=lambda b: b.state == BatchState.EXPORTED)
    assert batch.export_error == "" and batch.counts["comparisons"] == 3

    # Nothing was lost: the comparisons submitted during the outage land in the next batch.
    next_week_ends = services.week_bounds(batch.week)[1] + dt.timedelta(days=7)
    following, _ = services.batch_close(week=services.week_of(next_week_ends - dt.timedelta(days=1)), now=next_week_ends)
    assert sorted(following.comparisons.values_list("id", flat=True)) == sorted(report["after"])
