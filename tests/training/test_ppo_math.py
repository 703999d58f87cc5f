"""PPO maths against values computed by hand."""
import math

import pytest
import torch
from torch.testing import assert_close

from training.ppo_math import (
    clipped_surrogate_loss,
    clipped_value_loss,
    generalized_advantage_estimation,
    kl_penalized_rewards,
    masked_whiten,
    response_mask,
)


def test_kl_penalty_is_per_token_and_the_score_lands_on_the_last_response_token():
    logprobs = torch.tensor([[-1.0, -2.0, -0.5]])
    ref_logprobs = torch.tensor([[-1.5, -1.0, -0.5]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    rewards, kl = kl_penalized_rewards(logprobs, ref_logprobs, torch.tensor([2.0]), mask, beta=0.1)
    assert_close(kl, torch.tensor([[0.5, -1.0, 0.0]]))
    # -0.1 * 0.5; -0.1 * -1.0 + 2.0 on the last real token; nothing on padding
    assert_close(rewards, torch.tensor([[-0.05, 2.1, 0.0]]))


def test_kl_penalty_refuses_an_empty_response():
    with pytest.raises(ValueError, match="at least one token"):
        kl_penalized_rewards(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1), torch.zeros(1, 2), beta=0.01)


def test_gae_on_a_short_trajectory():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 5.0]])
    values = torch.tensor([[0.5, 0.4, 0.3], [0.5, 0.3, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    advantages, returns = generalized_advantage_estimation(rewards, values, mask, gamma=0.9, lam=0.5)
    # Row 1: d2 = 1 - 0.3 = 0.7; d1 = 0.9*0.3 - 0.4 = -0.13, A1 = -0.13 + 0.45*0.7 = 0.185;
    #        d0 = 0.9*0.4 - 0.5 = -0.14, A0 = -0.14 + 0.45*0.185 = -0.05675.
    # Row 2 ends after two tokens, so the padding's reward 5 and value 9 are ignored:
    #        A1 = 1 - 0.3 = 0.7; A0 = 0.9*0.3 - 0.5 + 0.45*0.7 = 0.085.
    assert_close(advantages, torch.tensor([[-0.05675, 0.185, 0.7], [0.085, 0.7, 0.0]]))
    assert_close(returns, torch.tensor([[0.44325, 0.585, 1.0], [0.585, 1.0, 0.0]]))


def test_gae_with_lambda_one_and_gamma_one_gives_monte_carlo_returns():
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    values = torch.tensor([[0.1, 0.2, 0.3]])
    _, returns = generalized_advantage_estimation(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert_close(returns, torch.tensor([[6.0, 5.0, 3.0]]))


def _surrogate(ratios, advantages):
    old = torch.zeros(len(ratios), dtype=torch.float64)
    new = torch.tensor([math.log(r) for r in ratios], dtype=torch.float64, requires_grad=True)
    loss, clip_fraction = clipped_surrogate_loss(
        new.unsqueeze(0), old.unsqueeze(0), torch.tensor([advantages], dtype=torch.float64),
        torch.ones(1, len(ratios), dtype=torch.float64), clip=0.2,
    )
    loss.backward()
    return loss.item(), clip_fraction.item(), new.grad.tolist()


def test_clipped_surrogate_takes_the_pessimistic_term():
    # ratio, advantage -> per-token loss: 1.5, +1 -> -1.2 (clipped); 0.5, +1 -> -0.5;
    # 0.5, -1 -> 0.8 (clipped); 1.5, -1 -> 1.5.  Mean = (-1.2 - 0.5 + 0.8 + 1.5) / 4 = 0.15
    loss, clip_fraction, grad = _surrogate([1.5, 0.5, 0.5, 1.5], [1.0, 1.0, -1.0, -1.0])
    assert loss == pytest.approx(0.15)
    assert clip_fraction == pytest.approx(0.5)
    # Clipped tokens get no gradient; the others get -A * ratio / n_tokens.
    assert grad == pytest.approx([0.0, -0.5 / 4, 0.0, 1.5 / 4])


def test_clipped_surrogate_at_the_clip_boundary():
    # At ratio 1 + clip both terms are equal: the loss is -A * 1.2 either way.
    loss, _, _ = _surrogate([1.2], [2.0])
    assert loss == pytest.approx(-2.4)
    # Just inside the boundary the gradient flows, just outside it is cut off.
    _, inside_fraction, inside_grad = _surrogate([1.199], [2.0])
    _, outside_fraction, outside_grad = _surrogate([1.201], [2.0])
    assert inside_grad[0] == pytest.approx(-2.0 * 1.199)
    assert outside_grad[0] == 0.0
    assert (inside_fraction, outside_fraction) == (0.0, 1.0)


def test_clipped_value_loss():
    values = torch.tensor([[1.0, 2.0]])
    old_values = torch.tensor([[0.5, 0.5]])
    returns = torch.tensor([[1.5, 0.0]])
    loss, clip_fraction = clipped_value_loss(values, old_values, returns, torch.ones(1, 2), clip=0.2)
    # Token 0: (1 - 1.5)^2 = 0.25 vs clipped (0.7 - 1.5)^2 = 0.64 -> 0.64.
    # Token 1: (2 - 0)^2 = 4 vs clipped (0.7 - 0)^2 = 0.49 -> 4.   0.5 * (0.64 + 4) / 2 = 1.16
    assert loss.item() == pytest.approx(1.16)
    assert clip_fraction.item() == pytest.approx(0.5)


def test_value_loss_ignores_padding():
    loss, _ = clipped_value_loss(
        torch.tensor([[1.0, 100.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[3.0, 0.0]]),
        torch.tensor([[1.0, 0.0]]), clip=0.2,
    )
    assert loss.item() == pytest.approx(0.5 * 4.0)


def test_response_mask_keeps_the_first_eos_and_drops_what_follows():
    ids = torch.tensor([[5, 2, 2, 2], [5, 6, 7, 8], [2, 9, 2, 9]])
    assert response_mask(ids, eos_token_id=2).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]


def test_masked_whiten_ignores_padding():
    values = torch.tensor([[1.0, 2.0, 50.0], [3.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert_close(masked_whiten(values, mask), torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
