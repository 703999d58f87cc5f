"""A training run on a real Celery worker process consuming the "training" queue on the real Redis
broker (never eager mode), and what happens when the worker process running it is killed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from django.conf import settings as django_settings
from django.db import connection

from annotation_site.runs import artifacts
from annotation_site.runs.models import RunStatus, TrainingRun
from tests.annotation_site.runs.conftest import launch
from tests.annotation_site.batches.test_worker import redis_is_up
from tests.conftest import require

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BROKER_URL = os.environ.get("RUNS_TEST_BROKER_URL", "redis://127.0.0.1:6379/7")
ROOT = Path(django_settings.BASE_DIR)


@pytest.fixture
def site_env(postgres, settings):
    require(redis_is_up(BROKER_URL), f"needs Redis at {BROKER_URL}")
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()  # this area's own Redis database: no stale tasks
    db = connection.settings_dict
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CELERY_", "TEST_DATABASE", "RUN_"))}
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        CELERY_BROKER_URL=BROKER_URL,
        CHECKPOINT_ROOT=str(settings.CHECKPOINT_ROOT),
        EXPORT_ROOT=str(settings.EXPORT_ROOT),
        VAR_DIR=str(settings.CHECKPOINT_ROOT.parent / "var"),
        RUN_POLL_INTERVAL_S="0.3",
        DB_CONN_MAX_AGE="0",
    )
    return env


def site(env: dict, code: str) -> str:
    """Run Python in a fresh site process (`manage.py shell -c`), as the web side would."""
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


@pytest.fixture
def training_worker(site_env, tmp_path):
    log = tmp_path / "worker.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "annotation_site", "worker", "--queues", "training", "--pool=prefork",
         "--concurrency=1", "--loglevel=INFO", "--without-gossip", "--without-mingle", "-n", f"runs-test-{os.getpid()}@%h"],
        cwd=ROOT, env=site_env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while "ready." not in log.read_text(errors="replace"):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        for child in psutil.Process(process.pid).children(recursive=True):
            child.kill()
        process.kill()
        process.wait()


def wait_for(run_id: int, until, timeout: float) -> TrainingRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = TrainingRun.objects.get(pk=run_id)
        if until(run):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run never got there: {TrainingRun.objects.filter(pk=run_id).values()[0]}")


def test_a_killed_worker_process_gives_the_run_back_and_it_restarts_from_scratch(
    site_env, training_worker, researcher, base_checkpoint, exported_batch, enqueued
):
    run = launch(researcher, overrides=["max_steps=40", "eval_fraction=0"], base_checkpoint=base_checkpoint, batches=[exported_batch])
    # Enqueued from a site process, through the settings' routes: it must land on the training queue.
    site(site_env, f"from annotation_site.runs.services import run_enqueue; assert run_enqueue(run_id={run.pk})")
    run = wait_for(run.pk, lambda run: run.status == RunStatus.RUNNING and run.step >= 2, timeout=120)
    recipe = psutil.Process(run.process_group)
    [pool_process] = psutil.Process(training_worker.pid).children()
    assert recipe.ppid() == pool_process.pid

    pool_process.send_signal(signal.SIGKILL)  # e.g. the OOM killer takes the worker process

    recipe.wait(timeout=10)  # the recipe dies with its worker (PR_SET_PDEATHSIG), no orphan trains on
    run = wait_for(run.pk, lambda run: run.is_finished, timeout=180)
    assert run.status == RunStatus.SUCCEEDED and run.attempts == 2, run.error
    assert run.step == 40 and run.checkpoint is not None
    log = artifacts.run_paths(run).log.read_text()
    assert f"attempt 1 lost its worker (worker {run.worker.split(':')[0]}" in log and "=== attempt 2" in log
