"""A whole iteration of the loop on tiny models through real Celery workers (the site's worker and
the training worker, the real Redis broker, never eager mode): annotators vote on generated
pairs, the batch closes and exports, the export triggers the iteration, both reward models train,
the gates decide, rejection sampling and the evaluation run, the canary generates pairs against
the deployed policy, simulated annotators vote, and the canary is promoted."""
from __future__ import annotations

import os
import random
import time

import pytest
from django.utils import timezone

from annotation_site.annotation.models import Comparison, Item, ItemStatus
from annotation_site.batches.models import Batch, BatchState
from annotation_site.batches.services import batch_close
from annotation_site.generation.models import CanaryState, Deployment
from annotation_site.loop.models import IterationState, LoopIteration, StepKind, StepState
from annotation_site.loop.services.iterations import loops_tick
from annotation_site.runs.models import RunStatus, TrainingRun
from tests.annotation_site.generation.conftest import queue_prompts
from tests.annotation_site.loop.conftest import make_user, step_states
from tests.conftest import require
from tests.support.simulated_annotators import vote_on_everything_ready
from tests.support.site_processes import CeleryWorker, redis_is_up, site_env, tasks_sent_to

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BROKER_URL = os.environ.get("RUNS_TEST_BROKER_URL", "redis://127.0.0.1:6379/7")


def wait_until(condition, *, timeout: float, workers, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        for worker in workers:
            assert worker.process.poll() is None, worker.log.read_text(errors="replace")[-3000:]
        time.sleep(0.5)
    logs = "\n".join(worker.log.read_text(errors="replace")[-2500:] for worker in workers)
    raise AssertionError(f"{what} never happened:\n{logs}")


def test_a_batch_export_runs_the_whole_loop_and_the_canary_is_promoted_by_annotators_votes(
    postgres, settings, tmp_path, researcher, chat_checkpoint, deployed, make_loop
):
    require(redis_is_up(BROKER_URL), f"needs Redis at {BROKER_URL}")
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()
    settings.BATCH_TEST_SIZE = 0.3  # a third of the tiny batch is held out, frozen into the batch at its close
    env = site_env(
        broker_url=BROKER_URL, drop_prefixes=("RUN_", "GENERATION_", "SELECTION_", "CANARY_", "BATCH_"),
        CHECKPOINT_ROOT=str(settings.CHECKPOINT_ROOT), CHECKPOINT_ROOTS=",".join(settings.CHECKPOINT_ROOTS),
        EXPORT_ROOT=str(settings.EXPORT_ROOT), VAR_DIR=str(tmp_path / "var"), RUN_POLL_INTERVAL_S="0.3",
        GENERATION_READY_TARGET="0", GENERATION_MAX_TOKENS="8", GENERATION_SEED="0",
    )
    # Gates any pair of tiny random policies passes (the failing gates have their own tests): what
    # is under test here is that every step runs, in order, on the workers, through to the canary.
    loop = make_loop(trigger="batch_exported", min_win_rate=0.0, max_unsafe_share_rise=1.0, canary_share=0.5,
                     canary_min_votes=4, canary_min_win_rate=0.5)
    annotators = [make_user("annotator", f"annotator-{i}") for i in range(2)]
    rng = random.Random(0)
    # The services this test calls enqueue from this process: to the workers' broker, not the suite's.
    with tasks_sent_to(BROKER_URL):
        site = CeleryWorker(env, tmp_path / "site.log")
        training = CeleryWorker(env, tmp_path / "training.log", queues="training")
        workers = (site, training)
        try:
            # The week's annotation: pairs from the deployed policy, every one answered.
            queue_prompts(6, "helpfulness", text="Tell me about travel")
            queue_prompts(6, "safety", text="How do I stay safe hiking")
            wait_until(lambda: Item.objects.filter(status=ItemStatus.READY).count() == 12, timeout=180, workers=workers,
                       what="the first pairs")
            assert vote_on_everything_ready(annotators, rng) == 12

            # The batch closes; its export (on the site's worker) is what triggers the loop.
            batch, _ = batch_close(now=timezone.now())
            wait_until(lambda: Batch.objects.get(pk=batch.pk).state == BatchState.EXPORTED, timeout=120, workers=workers,
                       what="the export")
            assert loops_tick()["started"]  # beat's tick, here by hand
            iteration = LoopIteration.objects.get(definition=loop)
            assert iteration.batch == batch

            iteration = wait_until(lambda: LoopIteration.objects.filter(pk=iteration.pk, state__in=[
                IterationState.CANARY, IterationState.FAILED, IterationState.REJECTED]).first(),
                timeout=900, workers=workers, what="the canary")
            assert iteration.state == IterationState.CANARY, iteration.outcome
            runs = TrainingRun.objects.filter(loop_steps__iteration=iteration).order_by("pk")
            assert [run.recipe for run in runs] == ["reward_model", "reward_model", "rejection_sampling", "evaluate_policy"]
            assert {run.status for run in runs} == {RunStatus.SUCCEEDED}
            assert all(list(run.batches.all()) == [batch] for run in runs)
            gate = iteration.steps.get(kind=StepKind.POLICY_GATE).result
            assert gate["passed"] and 0 <= gate["win_rate"] <= 1 and gate["wins"] + gate["ties"] + gate["losses"] > 0
            canary = Deployment.objects.get(pk=iteration.canary_deployment_id)
            assert canary.checkpoint == iteration.policy_checkpoint and canary.canary_of == deployed
            assert canary.canary_state == CanaryState.RUNNING

            # New pairs: half of them the canary against the deployed policy; annotators prefer the canary.
            for topic in ("cook", "garden"):  # a fill generates at most 8 of the items it is told about
                queue_prompts(6, "helpfulness", text=f"Explain how to {topic}")
            wait_until(lambda: Item.objects.filter(status=ItemStatus.READY).count() == 12, timeout=180, workers=workers,
                       what="the canary's pairs")
            vote_on_everything_ready(annotators, rng, prefer=canary)
        finally:
            site.stop()
            training.stop()
    canary_votes = Comparison.objects.filter(chosen__sampling_params__deployment=canary.pk).count()
    assert canary_votes >= 4  # enough pairs had the canary in them (share 0.5 of 12, GENERATION_SEED fixed)

    loops_tick()

    iteration.refresh_from_db()
    assert iteration.state == IterationState.PROMOTED, iteration.outcome
    assert iteration.outcome.startswith(f"{iteration.policy_checkpoint.name} was promoted: won 100.0% of")
    assert set(step_states(iteration).values()) == {StepState.SUCCEEDED, StepState.SKIPPED}
    assert iteration.steps.get(kind=StepKind.CANARY).result["decision"] == "promote"
    canary.refresh_from_db()
    deployed.refresh_from_db()
    assert canary.canary_state == CanaryState.PROMOTED and canary.enabled and not deployed.enabled
