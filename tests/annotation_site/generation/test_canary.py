"""Canary deployments: starting one, its share of the queue, its votes, and the decision."""
import itertools
import math
import random
from types import SimpleNamespace

import pytest
from auditlog.models import LogEntry

from annotation_site.accounts.services import user_create
from annotation_site.annotation.models import Comparison, Dialogue, Item, Sample
from annotation_site.errors import ApplicationError, Conflict
from annotation_site.generation import canary as canaries
from annotation_site.generation import services
from annotation_site.generation.models import CanaryState, Deployment
from annotation_site.generation.policy import SamplingPolicy
from annotation_site.generation.tasks import decide_canaries
from tests.annotation_site.generation.conftest import deploy_local, make_checkpoint, queue_prompts

pytestmark = pytest.mark.django_db
_counter = itertools.count(1)


@pytest.fixture
def baseline(tiny_model_dir):
    return deploy_local(tiny_model_dir, "ppo-v1")


def start(baseline, tiny_model_dir, *, share=0.25, min_votes=10, min_win_rate=0.55, name="ppo-v2"):
    return canaries.canary_start(checkpoint=make_checkpoint(tiny_model_dir, name, kind="ppo"), baseline=baseline,
                                 share=share, min_votes=min_votes, min_win_rate=min_win_rate)


def vote(winner: Deployment, loser: Deployment, *, rating="better"):
    """An annotator's comparison of two samples the deployments wrote (as the queue filling stores them)."""
    n = next(_counter)
    dialogue = Dialogue.objects.create(turns=[{"role": "user", "content": f"question {n}"}], guideline_kind="helpfulness")
    chosen, rejected = (
        Sample.objects.create(dialogue=dialogue, text=f"answer {n}", model_name=d.checkpoint.name,
                              checkpoint=d.checkpoint, sampling_params={"deployment": d.pk})
        for d in (winner, loser)
    )
    item = Item.objects.create(dialogue=dialogue, guideline_kind="helpfulness", sample_a=chosen, sample_b=rejected)
    return Comparison.objects.create(item=item, guideline_kind="helpfulness", chosen=chosen, rejected=rejected,
                                     rating=rating)


def votes(canary, baseline, *, won: int, lost: int, rating="better"):
    return [vote(canary, baseline, rating=rating) for _ in range(won)] + [
        vote(baseline, canary, rating=rating) for _ in range(lost)]


def binomial_bound(n: int, p: float, sigmas: float = 4) -> tuple[float, float]:
    spread = sigmas * math.sqrt(n * p * (1 - p))
    return n * p - spread, n * p + spread


# --- Starting ------------------------------------------------------------------------------------


def test_a_canary_is_a_deployment_of_the_new_checkpoint_against_its_baseline(baseline, tiny_model_dir):
    canary = start(baseline, tiny_model_dir)
    canary.refresh_from_db()
    assert canary.checkpoint.name == "ppo-v2" and canary.engine == baseline.engine == "local" and canary.enabled
    assert canary.canary_of == baseline and canary.canary_state == CanaryState.RUNNING
    assert (canary.canary_share, canary.canary_min_votes, canary.canary_min_win_rate) == (0.25, 10, 0.55)
    entry = LogEntry.objects.get(object_pk=str(canary.pk), additional_data__event="canary.start")
    assert entry.additional_data["baseline"] == baseline.pk


@pytest.mark.parametrize("share, min_votes, min_win_rate, field", [
    (0, 10, 0.5, "share"), (1, 10, 0.5, "share"), (0.2, 0, 0.5, "min_votes"), (0.2, 10, 1.5, "min_win_rate"),
])
def test_a_canary_with_impossible_settings_is_refused_naming_the_setting(
        baseline, tiny_model_dir, share, min_votes, min_win_rate, field):
    with pytest.raises(ApplicationError) as refused:
        start(baseline, tiny_model_dir, share=share, min_votes=min_votes, min_win_rate=min_win_rate)
    assert refused.value.extra == {"field": field}
    assert not Deployment.objects.filter(canary_of=baseline).exists()


def test_a_canary_of_the_baselines_own_checkpoint_or_of_a_disabled_baseline_is_refused(baseline, tiny_model_dir):
    with pytest.raises(ApplicationError, match="baseline's own checkpoint"):
        canaries.canary_start(checkpoint=baseline.checkpoint, baseline=baseline, share=0.2, min_votes=5, min_win_rate=0.5)
    Deployment.objects.filter(pk=baseline.pk).update(enabled=False)
    with pytest.raises(Conflict, match="disabled"):
        start(baseline, tiny_model_dir)


def test_running_canaries_never_take_more_than_all_new_pairs(baseline, tiny_model_dir):
    start(baseline, tiny_model_dir, share=0.6)
    with pytest.raises(Conflict, match="60%"):
        start(baseline, tiny_model_dir, share=0.5, name="ppo-v3")


# --- Its share of the queue ----------------------------------------------------------------------


def test_the_policy_pairs_a_canary_only_with_its_baseline_at_its_share():
    policy = SamplingPolicy(temperatures=(0.7, 1.0, 1.2), top_p=0.9, max_tokens=8, latest_checkpoints=3)
    baseline = SimpleNamespace(pk=1, checkpoint_id=10, is_running_canary=False, canary_of_id=None)
    older = SimpleNamespace(pk=2, checkpoint_id=5, is_running_canary=False, canary_of_id=None)
    canary = SimpleNamespace(pk=3, checkpoint_id=20, is_running_canary=True, canary_of_id=1, canary_share=0.3)
    rng, n, with_canary = random.Random(4), 2000, 0
    for _ in range(n):
        (first, t_first), (second, t_second) = policy.choose_pair([canary, baseline, older], rng)
        assert t_first != t_second
        if canary in (first, second):
            with_canary += 1
            assert {first.pk, second.pk} == {canary.pk, baseline.pk}
    low, high = binomial_bound(n, 0.3)
    assert low <= with_canary <= high


def test_the_queue_gives_the_canary_its_share_of_new_pairs_all_against_the_baseline(
        baseline, tiny_model_dir, settings):
    n = 48
    settings.GENERATION_READY_TARGET = settings.GENERATION_BATCH_ITEMS = n
    older = deploy_local(tiny_model_dir, "sft")
    canary = start(baseline, tiny_model_dir, share=0.25)
    items = queue_prompts(n)
    report = services.queue_fill(worker="w1", rng=random.Random(7))
    assert len(report.generated_item_ids) == n
    with_canary, sides_seen = 0, set()
    for item in Item.objects.filter(pk__in=[item.pk for item in items]).select_related("sample_a", "sample_b"):
        pair = {item.sample_a.sampling_params["deployment"], item.sample_b.sampling_params["deployment"]}
        if canary.pk in pair:
            with_canary += 1
            assert pair == {canary.pk, baseline.pk}
            sides_seen.add(item.sample_a.sampling_params["deployment"])
        else:
            assert pair == {baseline.pk, older.pk}
    low, high = binomial_bound(n, 0.25)
    assert low <= with_canary <= high and with_canary > 0
    assert sides_seen == {canary.pk, baseline.pk}  # the canary is sample A on some items, B on others


def test_a_promoted_canary_serves_every_pair_and_a_rolled_back_one_none(baseline, tiny_model_dir, rng, settings):
    canary = start(baseline, tiny_model_dir, share=0.5)
    canaries.canary_promote(canary=canary, reason="won")
    queue_prompts(4)
    services.queue_fill(worker="w1", rng=rng)
    used = set(Sample.objects.values_list("sampling_params__deployment", flat=True))
    assert used == {canary.pk}
    second = start(Deployment.objects.get(pk=canary.pk), tiny_model_dir, share=0.5, name="ppo-v3")
    canaries.canary_rollback(canary=second, reason="worse")
    queue_prompts(4, text="Tell me about food")
    services.queue_fill(worker="w1", rng=rng)
    assert set(Sample.objects.values_list("sampling_params__deployment", flat=True)) == {canary.pk}


# --- Votes and the decision ------------------------------------------------------------------------


def test_not_yet_decided_while_the_votes_are_fewer_than_the_minimum(baseline, tiny_model_dir):
    canary = start(baseline, tiny_model_dir, min_votes=10)
    votes(canary, baseline, won=9, lost=0)
    assert canaries.canary_decide(canary=canary) is None
    assert decide_canaries() == {"promoted": [], "rolled_back": [], "waiting": [canary.pk]}
    canary.refresh_from_db()
    assert canary.canary_state == CanaryState.RUNNING and canary.enabled


def test_votes_favouring_the_canary_promote_it_and_disable_the_baseline(baseline, tiny_model_dir):
    canary = start(baseline, tiny_model_dir, min_votes=10, min_win_rate=0.55)
    votes(canary, baseline, won=7, lost=3)
    decision = canaries.canary_decide(canary=canary)
    assert decision.decision == "promote" and "70.0% of 10 votes" in decision.reason
    assert decide_canaries()["promoted"] == [canary.pk]
    canary.refresh_from_db()
    baseline.refresh_from_db()
    assert canary.canary_state == CanaryState.PROMOTED and canary.enabled and not baseline.enabled
    assert canary.canary_tally == {"wins": 7, "losses": 3, "ties": 0, "votes": 10, "win_rate": 0.7}
    assert canary.canary_decided_at is not None and canary.canary_reason == decision.reason
    entry = LogEntry.objects.get(object_pk=str(canary.pk), additional_data__event="canary.promote")
    assert entry.additional_data["tally"]["wins"] == 7
    assert canaries.canary_decide(canary=canary).decision == "promote"  # decided once, kept
    with pytest.raises(Conflict, match="promoted"):
        canaries.canary_rollback(canary=canary, reason="changed my mind")


def test_votes_favouring_the_baseline_roll_the_canary_back_with_the_reason(baseline, tiny_model_dir):
    canary = start(baseline, tiny_model_dir, min_votes=10, min_win_rate=0.55)
    votes(canary, baseline, won=4, lost=6)
    assert decide_canaries()["rolled_back"] == [canary.pk]
    canary.refresh_from_db()
    baseline.refresh_from_db()
    assert canary.canary_state == CanaryState.ROLLED_BACK and not canary.enabled and baseline.enabled
    assert "40.0% of 10 votes" in canary.canary_reason and "below the 55.0% required" in canary.canary_reason
    assert LogEntry.objects.filter(object_pk=str(canary.pk), additional_data__event="canary.rollback").exists()


def test_a_negligibly_better_vote_is_a_tie_counting_half(baseline, tiny_model_dir):
    canary = start(baseline, tiny_model_dir, min_votes=4, min_win_rate=0.5)
    votes(canary, baseline, won=1, lost=1)
    votes(canary, baseline, won=0, lost=2, rating="negligibly_better")
    tally = canaries.canary_tally(canary=canary)
    assert (tally.wins, tally.losses, tally.ties, tally.votes) == (1, 1, 2, 4)
    assert tally.win_rate == 0.5
    assert canaries.canary_decide(canary=canary).decision == "promote"  # at least the threshold


def test_excluded_comparisons_and_gold_answers_are_no_votes(baseline, tiny_model_dir):
    from annotation_site.quality.services import comparison_exclude, gold_mark

    canary = start(baseline, tiny_model_dir, min_votes=10, min_win_rate=0.55)
    wins = votes(canary, baseline, won=8, lost=2)
    admin = user_create(username="qa", role="admin", password="pw-123456")
    for comparison in wins[:3]:
        comparison_exclude(comparison=comparison, reason="failed review", excluded_by=admin)
    gold = wins[3].item
    gold_mark(item=gold, better_sample=gold.sample_a)
    tally = canaries.canary_tally(canary=canary)
    assert (tally.wins, tally.losses, tally.votes) == (4, 2, 6)
    assert canaries.canary_decide(canary=canary) is None  # 6 votes left of the 10 needed


def test_only_votes_between_the_two_deployments_count(baseline, tiny_model_dir):
    canary = start(baseline, tiny_model_dir, min_votes=1)
    other = deploy_local(tiny_model_dir, "sft")
    votes(canary, baseline, won=1, lost=0)
    vote(canary, other)
    vote(other, baseline)
    # The baseline's checkpoint served by another deployment (e.g. the evaluation's samples) is not it.
    twin = Deployment.objects.create(checkpoint=baseline.checkpoint, engine="local")
    vote(twin, canary)
    assert canaries.canary_tally(canary=canary).votes == 1


def test_a_rollback_needs_a_reason_and_a_normal_deployment_is_no_canary(baseline, tiny_model_dir):
    canary = start(baseline, tiny_model_dir)
    with pytest.raises(ApplicationError, match="why"):
        canaries.canary_rollback(canary=canary, reason=" ")
    with pytest.raises(ApplicationError, match="not a canary"):
        canaries.canary_tally(canary=baseline)


def test_with_trusted_only_a_flagged_annotators_votes_do_not_count(baseline, tiny_model_dir, settings):
    settings.QUALITY_MIN_COMPARISONS = 1
    canary = start(baseline, tiny_model_dir, min_votes=4, min_win_rate=0.5)
    votes(canary, baseline, won=3, lost=0)
    clicker = user_create(username="clicker", role="annotator", password="pw-123456")
    # Every vote for the baseline came from one annotator who answered in a tenth of a second.
    for comparison in votes(canary, baseline, won=0, lost=4):
        Comparison.objects.filter(pk=comparison.pk).update(annotator=clicker, time_spent_ms=100)
    assert canaries.canary_decide(canary=canary).decision == "rollback"  # 3 of 7 votes by default

    settings.CANARY_TRUSTED_ONLY = True
    tally = canaries.canary_tally(canary=canary)
    assert (tally.wins, tally.losses, tally.votes) == (3, 0, 3)
    assert canaries.canary_decide(canary=canary) is None  # 3 trusted votes of the 4 needed
