"""The combined reward of eq. 3-4 against values computed by hand."""
import math

import pytest
import torch

from training.rewards import combined_probability, combined_reward, logit, whiten


def raw(p: float) -> float:
    """The reward-model scalar whose sigmoid is `p`."""
    return math.log(p / (1 - p))


def test_safety_prompt_uses_the_safety_score_even_when_it_is_high():
    reward = combined_reward(torch.tensor([raw(0.9)]), torch.tensor([raw(0.7)]), ["safety"])
    assert reward.item() == pytest.approx(math.log(0.7 / 0.3), abs=1e-5)  # 0.8473


def test_helpfulness_prompt_with_a_low_safety_score_uses_the_safety_score():
    reward = combined_reward(torch.tensor([raw(0.9)]), torch.tensor([raw(0.1)]), ["helpfulness"])
    assert reward.item() == pytest.approx(-2.197225, abs=1e-5)  # logit(0.1)


def test_helpfulness_prompt_with_a_high_safety_score_uses_the_helpfulness_score():
    reward = combined_reward(torch.tensor([raw(0.9)]), torch.tensor([raw(0.6)]), ["helpfulness"])
    assert reward.item() == pytest.approx(2.197225, abs=1e-5)  # logit(0.9)


def test_a_batch_mixes_the_three_cases_row_by_row():
    helpfulness = torch.tensor([0.9, 0.9, 0.9, 0.8])
    safety = torch.tensor([0.7, 0.1, 0.6, 0.15])
    safety_prompt = torch.tensor([True, False, False, False])
    picked = combined_probability(helpfulness, safety, safety_prompt)
    # The threshold is strict: exactly 0.15 counts as safe enough for the helpfulness score.
    assert picked.tolist() == pytest.approx([0.7, 0.1, 0.9, 0.8])


def test_threshold_is_configurable():
    picked = combined_probability(torch.tensor([0.9]), torch.tensor([0.2]), torch.tensor([False]), threshold=0.25)
    assert picked.item() == pytest.approx(0.2)


def test_guidelines_must_match_the_scores():
    with pytest.raises(ValueError, match="one per response"):
        combined_reward(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]), ["safety"])


def test_logit_inverts_the_sigmoid_and_stays_finite_at_the_ends():
    assert logit(torch.tensor([0.5, 0.8])).tolist() == pytest.approx([0.0, math.log(4.0)], abs=1e-6)
    ends = logit(torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert ends.tolist() == pytest.approx([-13.815509, 13.815509], abs=1e-4)  # log((1 - 1e-6) / 1e-6)


def test_whiten_gives_zero_mean_and_unit_unbiased_std():
    assert whiten(torch.tensor([1.0, 2.0, 3.0])).tolist() == pytest.approx([-1.0, 0.0, 1.0], abs=1e-6)
    # mean 5, unbiased std sqrt(20 / 3) = 2.5820
    assert whiten(torch.tensor([2.0, 4.0, 6.0, 8.0])).tolist() == pytest.approx(
        [-1.161895, -0.387298, 0.387298, 1.161895], abs=1e-5
    )


def test_whiten_without_shifting_the_mean_only_rescales():
    assert whiten(torch.tensor([2.0, 4.0, 6.0]), shift_mean=False).tolist() == pytest.approx([3.0, 4.0, 5.0], abs=1e-6)


def test_whiten_refuses_a_single_score():
    with pytest.raises(ValueError, match="at least two"):
        whiten(torch.tensor([1.0]))
