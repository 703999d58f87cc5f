import random
from types import SimpleNamespace

import pytest
from django.core.exceptions import ImproperlyConfigured

from annotation_site.generation.policy import SamplingPolicy


def _deployments(*checkpoint_ids):
    return [SimpleNamespace(pk=i, checkpoint_id=c, is_running_canary=False, canary_of_id=None)
            for i, c in enumerate(checkpoint_ids)]


def test_one_checkpoint_answers_both_sides_at_two_different_temperatures(settings):
    policy = SamplingPolicy.from_settings()
    rng = random.Random(1)
    for _ in range(20):
        (first, t_first), (second, t_second) = policy.choose_pair(_deployments(7), rng)
        assert first is second and t_first != t_second
        assert {t_first, t_second} <= {0.7, 1.0, 1.2}


def test_two_checkpoints_answer_one_side_each_from_the_latest_ones(settings):
    settings.GENERATION_LATEST_CHECKPOINTS = 2
    policy = SamplingPolicy.from_settings()
    deployments = _deployments(30, 20, 10)  # newest checkpoint first
    rng = random.Random(2)
    used = set()
    for _ in range(30):
        (first, t_first), (second, t_second) = policy.choose_pair(deployments, rng)
        assert first.checkpoint_id != second.checkpoint_id and t_first != t_second
        used |= {first.checkpoint_id, second.checkpoint_id}
    assert used == {30, 20}


def test_a_checkpoint_with_two_deployments_is_still_one_variant(settings):
    policy = SamplingPolicy.from_settings()
    (first, _), (second, _) = policy.choose_pair(_deployments(5, 5), random.Random(3))
    assert first.checkpoint_id == second.checkpoint_id


@pytest.mark.parametrize("temperatures, message", [(["0.7", "hot"], "'hot'"), (["1.0"], "two different"), (["1.0", "1.0"], "two different"), (["-1", "1"], "'-1'")])
def test_a_bad_temperature_list_names_the_variable(settings, temperatures, message):
    settings.GENERATION_TEMPERATURES = temperatures
    with pytest.raises(ImproperlyConfigured, match=f"GENERATION_TEMPERATURES.*{message}"):
        SamplingPolicy.from_settings()


def test_sampling_params_carry_the_policy(settings):
    settings.GENERATION_TOP_P = 0.95
    settings.GENERATION_MAX_TOKENS = 128
    params = SamplingPolicy.from_settings().params(1.2, seed=9)
    assert params.to_dict() == {"temperature": 1.2, "top_p": 0.95, "max_tokens": 128, "n": 1, "seed": 9, "stop": []}


def test_k_candidates_are_distinct_variants_of_the_latest_checkpoints(settings):
    settings.GENERATION_LATEST_CHECKPOINTS = 2
    policy = SamplingPolicy.from_settings()
    deployments = _deployments(30, 20, 10)
    rng = random.Random(5)
    for _ in range(20):
        variants = policy.choose_variants(deployments, rng, k=4)
        keys = [(d.checkpoint_id, t) for d, t in variants]
        assert len(keys) == 4 == len(set(keys)) and {c for c, _ in keys} <= {30, 20}
    # One checkpoint at three temperatures has three variants: never a repeated one.
    assert len(policy.choose_variants(_deployments(7), rng, k=4)) == 3


def test_a_pair_draws_the_same_variants_as_before_candidates_existed(settings):
    policy = SamplingPolicy.from_settings()
    deployments = _deployments(30, 20)
    first, second = random.Random(6), random.Random(6)
    for _ in range(10):
        expected = (*first.sample(deployments, 2), *first.sample(policy.temperatures, 2))
        (a, t_a), (b, t_b) = policy.choose_pair(deployments, second)
        assert (a, b, t_a, t_b) == expected
