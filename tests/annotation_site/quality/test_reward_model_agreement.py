"""Agreement with the reward model: a real Celery worker on the "training" queue scores new
comparisons with a tiny reward model, and the report compares each annotator with it."""
from __future__ import annotations

import os
import time

import pytest

from annotation_site.generation.models import Checkpoint, CheckpointKind
from annotation_site.quality import selectors
from annotation_site.quality.models import RewardModelScore
from tests.annotation_site.batches.factories import make_annotator, make_comparison
from tests.conftest import require
from tests.support.site_processes import CeleryWorker, redis_is_up, run_site, site_env
from tests.training.rlhf_models import build_tiny_reward_model

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BROKER_URL = os.environ.get("QUALITY_TEST_BROKER_URL", "redis://127.0.0.1:6379/12")


def test_a_training_worker_scores_comparisons_and_the_report_compares_annotators(postgres, tiny_model_dir, tmp_path):
    require(redis_is_up(BROKER_URL), f"needs Redis at {BROKER_URL}")
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()
    rm_dir = build_tiny_reward_model(tiny_model_dir, tmp_path / "rm-helpfulness", seed=3)
    checkpoint = Checkpoint.objects.create(
        name="rm-helpfulness-v1", path=str(rm_dir), kind=CheckpointKind.REWARD_MODEL,
        training_config={"data": [{"path": "exports/2026-W48", "guidelines": ["helpfulness"]}]},
    )  # fmt: skip
    person = make_annotator("rm-rater")
    comparisons = [make_comparison(annotator=person, flip=index % 2 == 1) for index in range(6)]
    make_comparison(annotator=person, guideline_kind="safety", chosen_is_safe=True, rejected_is_safe=True, safety_bin="both_safe")

    env = site_env(broker_url=BROKER_URL)
    worker = CeleryWorker(env, tmp_path / "worker.log", queues="training")
    try:
        code = "from annotation_site.quality.tasks import reward_model_agreement_update as t; print(t.delay().id)"
        assert run_site(env, code)
        deadline = time.monotonic() + 180
        while RewardModelScore.objects.count() < len(comparisons) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        worker.stop()
    scores = dict(RewardModelScore.objects.filter(checkpoint=checkpoint).values_list("comparison_id", "difference"))
    assert sorted(scores) == sorted(c.pk for c in comparisons)  # helpfulness only: no safety RM is registered

    # The stored differences are the reward model's own: scored here again, in-process.
    from training.scoring import RewardModel

    model = RewardModel(rm_dir)
    prompts = [c.item.dialogue.turns for c in comparisons]
    chosen = model.score(prompts, [c.chosen.text for c in comparisons], batch_size=4)
    rejected = model.score(prompts, [c.rejected.text for c in comparisons], batch_size=4)
    for comparison, c, r in zip(comparisons, chosen, rejected):
        assert scores[comparison.pk] == pytest.approx(float(c - r), abs=1e-4)

    [row] = [r for r in selectors.quality_report(guideline_kind="helpfulness").annotators if r["username"] == "rm-rater"]
    agreeing = sum(1 for d in scores.values() if d > 0)
    assert row["reward_model_answers"] == 6 and row["agreement_with_reward_model"] == round(agreeing / 6, 4)
