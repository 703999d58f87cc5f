"""The maths of PPO for language models, as small pure functions (Llama 2 §3.2.3, eq. 4; PPO,
Schulman et al. 2017; GAE, Schulman et al. 2016; the per-token KL penalty of InstructGPT).

Every tensor over response tokens has shape `(batch, response_len)`; `mask` is 1.0 on the tokens
the policy generated (up to and including the first end-of-sequence token) and 0.0 on the padding
after them. Functions return plain tensors so the recipe can log them.
"""
from __future__ import annotations

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over the positions where `mask` is 1 (a token-level mean over the batch)."""
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, *, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Normalise `values` to zero mean and unit (unbiased) variance over the masked positions.

    Used on GAE advantages. Padding positions come back as 0. Shapes: `(B, T)`, `(B, T)` -> `(B, T)`.
    """
    count = mask.sum()
    if count < 2:
        raise ValueError(f"whitening needs at least two response tokens, got {int(count)}")
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask) * count / (count - 1)
    whitened = (values - mean) * torch.rsqrt(variance + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def response_mask(response_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """1.0 on each generated token up to and including the first `eos_token_id`, 0.0 after it.

    `generate` pads finished sequences with the pad token, which can equal the EOS token, so the
    mask is taken from the position of the first EOS rather than from the token ids.
    Shapes: `(B, T)` long -> `(B, T)` float.
    """
    is_eos = response_ids == eos_token_id
    # Number of EOS tokens strictly before each position: 0 up to and including the first EOS.
    eos_before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()
    return (eos_before == 0).float()


def kl_penalized_rewards(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    scores: torch.Tensor,
    mask: torch.Tensor,
    *,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards of eq. 4: `-beta * (log pi(a_t) - log pi_0(a_t))` on every response token,
    plus the (whitened) sequence score on the last response token.

    The per-token log-ratio is the usual single-sample estimate of KL(pi || pi_0).
    Shapes: `logprobs`, `ref_logprobs`, `mask` `(B, T)`, `scores` `(B,)` ->
    (`rewards` `(B, T)`, `kl` `(B, T)` the per-token log-ratio, zero on padding).
    """
    kl = (logprobs - ref_logprobs) * mask
    rewards = -beta * kl
    lengths = mask.sum(dim=1).long()
    if (lengths == 0).any():
        raise ValueError("every response needs at least one token to carry its score")
    last = (lengths - 1).unsqueeze(1)
    rewards = rewards.scatter_add(1, last, scores.to(rewards.dtype).unsqueeze(1))
    return rewards, kl


def generalized_advantage_estimation(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    *,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE: `delta_t = r_t + gamma * V_{t+1} - V_t`, `A_t = delta_t + gamma * lam * A_{t+1}`, with
    `V` and `A` zero after the last response token; returns are `A_t + V_t`.

    Shapes: `rewards`, `values`, `mask` `(B, T)` -> (`advantages` `(B, T)`, `returns` `(B, T)`),
    both zero on padding.
    """
    rewards = rewards * mask
    values = values * mask
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros_like(rewards[:, 0])
    next_value = torch.zeros_like(values[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = (delta + gamma * lam * next_advantage) * mask[:, t]
        advantages[:, t] = next_advantage
        next_value = values[:, t]
    returns = (advantages + values) * mask
    return advantages, returns


def clipped_surrogate_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped policy loss, `mean(max(-A * r, -A * clip(r, 1 - clip, 1 + clip)))` with the
    probability ratio `r = exp(log pi - log pi_old)`, averaged over response tokens.

    Shapes: all `(B, T)` -> (`loss` scalar, `clip_fraction` scalar: the share of tokens where the
    clipped term was the larger one, i.e. where the gradient was cut off).
    """
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_fraction = masked_mean((clipped > unclipped).float(), mask)
    return loss, clip_fraction


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Value loss with the value change clipped around the rollout's values, as in PPO's reference
    implementation: `0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2))`.

    Shapes: all `(B, T)` -> (`loss` scalar, `clip_fraction` scalar).
    """
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_error, clipped_error), mask)
    clip_fraction = masked_mean((clipped_error > unclipped_error).float(), mask)
    return loss, clip_fraction
