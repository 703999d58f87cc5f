"""A training run on a real Celery worker process consuming the "training" queue on the real Redis
broker (never eager mode), and what happens when the worker process running it is killed."""
from __future__ import annotations

import json
import os
import signal
import time

import psutil
import pytest

from annotation_site.runs import artifacts
from annotation_site.runs.models import RunStatus, TrainingRun
from tests.annotation_site.runs.conftest import launch
from tests.conftest import require
from tests.support.site_processes import CeleryWorker, redis_is_up, run_site, site_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BROKER_URL = os.environ.get("RUNS_TEST_BROKER_URL", "redis://127.0.0.1:6379/7")


@pytest.fixture
def runs_env(postgres, settings):
    require(redis_is_up(BROKER_URL), f"needs Redis at {BROKER_URL}")
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()  # this area's own Redis database: no stale tasks
    return site_env(
        broker_url=BROKER_URL, drop_prefixes=("RUN_",),
        CHECKPOINT_ROOT=str(settings.CHECKPOINT_ROOT), CHECKPOINT_ROOTS=",".join(settings.CHECKPOINT_ROOTS),
        EXPORT_ROOT=str(settings.EXPORT_ROOT),
        VAR_DIR=str(settings.CHECKPOINT_ROOT.parent / "var"), RUN_POLL_INTERVAL_S="0.3",
    )


@pytest.fixture
def training_worker(runs_env, tmp_path):
    worker = CeleryWorker(runs_env, tmp_path / "worker.log", queues="training")
    yield worker
    worker.stop()


def wait_for(run_id: int, until, timeout: float) -> TrainingRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = TrainingRun.objects.get(pk=run_id)
        if until(run):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run never got there: {TrainingRun.objects.filter(pk=run_id).values()[0]}")


def test_a_killed_worker_process_gives_the_run_back_and_it_resumes_from_its_saved_state(
    runs_env, training_worker, researcher, base_checkpoint, exported_batch, enqueued
):
    run = launch(researcher, overrides=["max_steps=60", "eval_fraction=0", "save_state_every=5"],
                 base_checkpoint=base_checkpoint, batches=[exported_batch])
    paths = artifacts.run_paths(run)
    # Enqueued from a site process, through the settings' routes: it must land on the training queue.
    code = f"from annotation_site.runs.services import run_enqueue; print(run_enqueue(run_id={run.pk}))"
    assert run_site(runs_env, code) == "True"
    run = wait_for(run.pk, lambda run: run.status == RunStatus.RUNNING and run.process_group, timeout=120)
    recipe = psutil.Process(run.process_group)
    [pool_process] = training_worker.pool_children()
    assert recipe.ppid() == pool_process.pid
    deadline = time.monotonic() + 120
    while paths.saved_step() is None and recipe.is_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    saved = paths.saved_step()
    assert saved is not None, "the recipe saved no state"

    pool_process.send_signal(signal.SIGKILL)  # e.g. the OOM killer takes the worker process

    recipe.wait(timeout=10)  # the recipe dies with its worker (PR_SET_PDEATHSIG), no orphan trains on
    assert saved < 60, "the run finished before its worker was killed"
    run = wait_for(run.pk, lambda run: run.is_finished, timeout=180)
    assert run.status == RunStatus.SUCCEEDED and run.attempts == 2, run.error
    # Attempt 2 continued from the newest state, not from step 0, and did every step once.
    assert run.resumed_from_step is not None and saved <= run.resumed_from_step < 60
    assert run.step == 60 and run.checkpoint is not None
    steps = [row["step"] for row in artifacts.read_metrics(paths.out) if "loss" in row]
    assert steps == list(range(1, 61))
    log = paths.log.read_text()
    assert f"attempt 1 lost its worker (worker {run.worker.split(':')[0]}" in log
    assert f"the next attempt resumes from the state saved at step {run.resumed_from_step}" in log
    assert "=== attempt 2 on" in log and f"[training] resumed from step {run.resumed_from_step}" in log
    assert [resume["step"] for resume in json.loads((paths.out / "resumes.json").read_text())] == [run.resumed_from_step]
    assert not (paths.root / "checkpoint.resume").exists()  # a finished run keeps no state
