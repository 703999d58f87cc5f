"""Active selection: the choice of the pair among K candidates, scoring on tiny reward models, and
the queue filling that keeps a random share."""
import math

import pytest
from django.core.exceptions import ImproperlyConfigured

from annotation_site.generation import selection


def test_uncertainty_chooses_the_pair_whose_rewards_differ_least():
    scores = selection.pair_uncertainty([0.0, 2.0, 2.3, -1.0])
    assert scores[(1, 2)] == pytest.approx(0.3) and len(scores) == 6
    assert selection.choose(selection.UNCERTAINTY, scores) == (1, 2)


def test_disagreement_chooses_the_pair_the_two_reward_models_disagree_on_most():
    newer, older = [0.0, 1.0, 0.0], [0.0, -1.0, 0.0]
    scores = selection.pair_disagreement(newer, older)
    sigma = 1 / (1 + math.exp(-1))
    assert scores[(0, 1)] == pytest.approx(abs((1 - sigma) - sigma)) and scores[(0, 2)] == 0
    assert selection.choose(selection.DISAGREEMENT, scores) in {(0, 1), (1, 2)}
    assert selection.choose(selection.DISAGREEMENT, scores) == (0, 1)  # ties go to the first pair


def test_random_chooses_no_pair_by_score():
    with pytest.raises(ValueError):
        selection.choose(selection.RANDOM, {(0, 1): 1.0})


def test_the_policy_is_per_guideline_with_a_global_default(settings):
    settings.SELECTION_POLICY = "uncertainty"
    settings.SELECTION_POLICY_SAFETY = "disagreement"
    chosen = selection.SelectionSettings.from_settings()
    assert chosen.policy_for("helpfulness") == "uncertainty" and chosen.policy_for("safety") == "disagreement"


@pytest.mark.parametrize("name, value, message", [
    ("SELECTION_POLICY", "smart", "SELECTION_POLICY='smart'"),
    ("SELECTION_POLICY_HELPFULNESS", "best", "SELECTION_POLICY_HELPFULNESS='best'"),
    ("SELECTION_CANDIDATES", 2, "at least 3"),
    ("SELECTION_RANDOM_SHARE", 1.5, "SELECTION_RANDOM_SHARE"),
])
def test_a_bad_selection_setting_names_the_variable(settings, name, value, message):
    setattr(settings, name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        selection.SelectionSettings.from_settings()


# --- The queue filling with selection on (tiny chat models and tiny reward models) -----------------

import random  # noqa: E402

from annotation_site.annotation.models import Item, ItemStatus  # noqa: E402
from annotation_site.generation import services  # noqa: E402
from annotation_site.generation.models import Checkpoint, CheckpointKind, GenerationClaim  # noqa: E402
from tests.annotation_site.generation.conftest import deploy_local, queue_prompts  # noqa: E402
from tests.training.rlhf_models import build_tiny_reward_model  # noqa: E402


@pytest.fixture
def selecting(settings, tiny_model_dir):
    settings.SELECTION_POLICY = "uncertainty"
    settings.SELECTION_CANDIDATES = 4
    settings.SELECTION_RANDOM_SHARE = 0.0
    return [deploy_local(tiny_model_dir, "sft-1"), deploy_local(tiny_model_dir, "sft-2")]


@pytest.fixture(scope="module")
def tiny_reward_models(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("reward-models")
    return {name: build_tiny_reward_model(tiny_model_dir, root / name, seed=seed)
            for seed, name in enumerate(["rm-helpfulness-v1", "rm-safety-v1", "rm-helpfulness-v2"], start=3)}


def register(paths, *names):
    return [Checkpoint.objects.create(name=name, path=str(paths[name]), kind=CheckpointKind.REWARD_MODEL) for name in names]


def fill_and_select(count):
    items = queue_prompts(count)
    report = services.queue_fill(worker="w1", rng=random.Random(11))
    selected = services.pairs_select(item_ids=report.selecting_item_ids, rng=random.Random(12))
    return [Item.objects.select_related("sample_a", "sample_b").get(pk=item.pk) for item in items], report, selected


def variant(sample):
    return sample.sampling_params["deployment"], sample.sampling_params["temperature"]


@pytest.mark.django_db
def test_uncertainty_queues_the_pair_whose_combined_reward_differs_least(selecting, tiny_reward_models):
    from training.rewards import combined_reward
    from training.scoring import RewardModel

    register(tiny_reward_models, "rm-helpfulness-v1", "rm-safety-v1")
    items, report, selected = fill_and_select(3)
    assert sorted(report.selecting_item_ids) == sorted(selected["selected"]) == sorted(item.pk for item in items)
    for item in items:
        record = item.selection
        assert item.status == ItemStatus.READY and record["policy"] == record["asked"] == "uncertainty"
        assert record["reward_models"] == ["rm-helpfulness-v1", "rm-safety-v1"] and len(record["candidates"]) == 4
        rewards = [candidate["reward"] for candidate in record["candidates"]]
        gaps = selection.pair_uncertainty(rewards)
        assert tuple(record["chosen"]) == min(gaps, key=gaps.get)
        chosen = {(record["candidates"][i]["deployment"], record["candidates"][i]["temperature"]) for i in record["chosen"]}
        assert {variant(item.sample_a), variant(item.sample_b)} == chosen
        # The recorded rewards are the reward models' own: the chosen two scored again here.
        prompts = [item.dialogue.turns] * 2
        texts = [item.sample_a.text, item.sample_b.text]
        again = combined_reward(RewardModel(tiny_reward_models["rm-helpfulness-v1"]).score(prompts, texts, batch_size=2),
                                RewardModel(tiny_reward_models["rm-safety-v1"]).score(prompts, texts, batch_size=2),
                                ["helpfulness"] * 2)
        by_variant = {(c["deployment"], c["temperature"]): c["reward"] for c in record["candidates"]}
        assert [by_variant[variant(item.sample_a)], by_variant[variant(item.sample_b)]] == pytest.approx(again.tolist(), abs=1e-4)
    assert not GenerationClaim.objects.exists()


@pytest.mark.django_db
def test_disagreement_queues_the_pair_the_two_newest_reward_models_disagree_on_most(selecting, settings, tiny_reward_models):
    settings.SELECTION_POLICY_HELPFULNESS = "disagreement"
    register(tiny_reward_models, "rm-helpfulness-v1", "rm-helpfulness-v2")
    items, _, _ = fill_and_select(2)
    for item in items:
        record = item.selection
        assert record["policy"] == "disagreement" and record["reward_models"] == ["rm-helpfulness-v2", "rm-helpfulness-v1"]
        scores = selection.pair_disagreement([c["newer"] for c in record["candidates"]],
                                             [c["older"] for c in record["candidates"]])
        assert tuple(record["chosen"]) == max(sorted(scores), key=scores.get)


@pytest.mark.django_db
def test_a_fixed_share_of_prompts_stays_random_pairs(selecting, settings, tiny_reward_models):
    n = 30
    settings.SELECTION_RANDOM_SHARE = 0.3
    settings.GENERATION_READY_TARGET = settings.GENERATION_BATCH_ITEMS = n
    register(tiny_reward_models, "rm-helpfulness-v1")
    items, report, _ = fill_and_select(n)
    random_share = [item for item in items if item.selection.get("note") == "the random share"]
    assert len(random_share) + len(report.selecting_item_ids) == n
    spread = 4 * math.sqrt(n * 0.3 * 0.7)
    assert n * 0.3 - spread <= len(random_share) <= n * 0.3 + spread and random_share
    for item in random_share:  # queued by the fill itself, as without selection
        assert item.pk in report.generated_item_ids and item.selection["policy"] == "random"
    for item in items:
        assert item.status == ItemStatus.READY
        if item not in random_share:  # one reward model, of the item's guideline: its own score
            assert item.selection["policy"] == "uncertainty" and item.selection["reward_models"] == ["rm-helpfulness-v1"]


@pytest.mark.django_db
def test_without_a_reward_model_the_candidates_give_a_random_pair_and_say_why(selecting):
    items, _, _ = fill_and_select(2)
    for item in items:
        assert item.status == ItemStatus.READY and item.selection["policy"] == "random"
        assert "no helpfulness reward model" in item.selection["note"] and len(set(item.selection["chosen"])) == 2


@pytest.mark.django_db
def test_candidates_the_reward_models_never_chose_from_become_a_random_pair_at_the_next_fill(selecting):
    items = queue_prompts(2)
    report = services.queue_fill(worker="w1", rng=random.Random(1))
    assert sorted(report.selecting_item_ids) == sorted(item.pk for item in items)
    assert all(len(claim.selection["candidates"]) == 4 for claim in GenerationClaim.objects.all())
    assert not Item.objects.filter(status=ItemStatus.READY).exists()
    # The training worker was busy past SELECTION_WAIT_S: the claims expire and the next fill takes them.
    from django.utils import timezone

    GenerationClaim.objects.update(expires_at=timezone.now() - timezone.timedelta(seconds=1))
    again = services.queue_fill(worker="w2", rng=random.Random(2))
    assert sorted(again.generated_item_ids) == sorted(item.pk for item in items)
    for item in Item.objects.filter(pk__in=[item.pk for item in items]):
        assert item.status == ItemStatus.READY and "SELECTION_WAIT_S" in item.selection["note"]
    # A late selection finds nothing left to choose for.
    assert services.pairs_select(item_ids=[item.pk for item in items])["selected"] == []


@pytest.mark.django_db
def test_with_selection_off_a_fill_records_nothing_and_draws_no_candidates(tiny_model_dir, rng):
    deploy_local(tiny_model_dir)
    (item,) = queue_prompts(1)
    report = services.queue_fill(worker="w1", rng=rng)
    item.refresh_from_db()
    assert report.generated_item_ids == [item.pk] and item.selection == {} and not report.selecting_item_ids


@pytest.mark.django_db
def test_a_reward_model_that_cannot_be_loaded_gives_a_random_pair_and_says_why(selecting, tmp_path):
    Checkpoint.objects.create(name="rm-helpfulness-gone", path=str(tmp_path / "deleted"), kind=CheckpointKind.REWARD_MODEL)
    items, _, selected = fill_and_select(1)
    assert selected["selected"] == [items[0].pk]
    record = items[0].selection
    assert record["policy"] == "random" and "could not score" in record["note"] and "deleted" in record["note"]
    assert [set(c) for c in record["candidates"]] == [{"deployment", "temperature"}] * 4
