"""A training worker killed in the middle of a loop step: the step's run is given back, resumes from
the state its recipe saved (the runs app, docs/runs.md), and the iteration goes on with the same
step and the same run; nothing is restarted from zero. Real Celery workers, the real Redis broker."""
from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from annotation_site.loop.models import IterationState, LoopIteration, StepKind, StepState, Trigger
from annotation_site.loop.services.iterations import iteration_cancel, iteration_start
from annotation_site.runs import artifacts
from annotation_site.runs.models import RunStatus
from tests.annotation_site.runs.conftest import TINY_REWARD_MODEL
from tests.conftest import require
from tests.support.site_processes import CeleryWorker, redis_is_up, site_env, tasks_sent_to

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BROKER_URL = os.environ.get("RUNS_TEST_BROKER_URL", "redis://127.0.0.1:6379/7")


def wait_until(condition, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} never happened")


def test_a_worker_killed_mid_step_resumes_the_steps_run_and_the_iteration_goes_on(
    postgres, settings, tmp_path, researcher, deployed, batch, make_loop
):
    require(redis_is_up(BROKER_URL), f"needs Redis at {BROKER_URL}")
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()
    env = site_env(
        broker_url=BROKER_URL, drop_prefixes=("RUN_",),
        CHECKPOINT_ROOT=str(settings.CHECKPOINT_ROOT), CHECKPOINT_ROOTS=",".join(settings.CHECKPOINT_ROOTS),
        EXPORT_ROOT=str(settings.EXPORT_ROOT), VAR_DIR=str(tmp_path / "var"), RUN_POLL_INTERVAL_S="0.3",
    )
    loop = make_loop(reward_model_overrides=[*TINY_REWARD_MODEL, "max_steps=60", "save_state_every=5"])
    # The services this test calls enqueue from this process: to the workers' broker, not the suite's.
    with tasks_sent_to(BROKER_URL):
        site = CeleryWorker(env, tmp_path / "site.log")
        training = CeleryWorker(env, tmp_path / "training.log", queues="training")
        try:
            iteration = iteration_start(definition=loop, trigger=Trigger.MANUAL, started_by=researcher)
            step = wait_until(lambda: iteration.steps.filter(kind=StepKind.REWARD_MODEL_HELPFULNESS, run__status=RunStatus.RUNNING,
                                                             run__process_group__isnull=False).select_related("run").first(),
                              timeout=120, what="the first reward model's run")
            run, paths = step.run, artifacts.run_paths(step.run)
            recipe = psutil.Process(run.process_group)
            [pool_process] = training.pool_children()
            wait_until(lambda: paths.saved_step() is not None or not recipe.is_running(), timeout=120, what="a saved state")
            saved = paths.saved_step()
            assert saved is not None, "the recipe saved no state"

            pool_process.send_signal(signal.SIGKILL)  # e.g. the OOM killer takes the worker process

            recipe.wait(timeout=10)
            assert saved < 60, "the run finished before its worker was killed"
            # The iteration goes on to the next step once the resumed run succeeds.
            wait_until(lambda: iteration.steps.filter(kind=StepKind.REWARD_MODEL_SAFETY, run__isnull=False).exists(),
                       timeout=300, what="the next step")
        finally:
            site.stop()
            training.stop()
    step.refresh_from_db()
    run.refresh_from_db()
    assert step.state == StepState.SUCCEEDED and step.attempts == 1 and step.run_id == run.pk
    assert run.status == RunStatus.SUCCEEDED and run.attempts == 2 and saved <= run.resumed_from_step < 60
    assert [row["step"] for row in artifacts.read_metrics(paths.out) if "loss" in row] == list(range(1, 61))
    assert LoopIteration.objects.get(pk=iteration.pk).state == IterationState.RUNNING
    iteration_cancel(iteration=iteration, actor=researcher)
