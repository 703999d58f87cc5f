"""The combined safety/helpfulness reward of the Llama 2 paper (§3.2.3, eq. 3-4).

The two reward models output one scalar each; the paper reads them as probabilities (the sigmoid of
the scalar), picks the safety score when the prompt is a safety prompt or when the response looks
unsafe (safety probability under 0.15), else the helpfulness score, and turns the pick back into a
linear score with the logit before whitening it over the batch:

    R_c(g|p) = R_s(g|p) if is_safety(p) or R_s(g|p) < 0.15 else R_h(g|p)        (eq. 3)
    R~_c(g|p) = whiten(logit(R_c(g|p))) - beta * KL(pi_theta(g|p) || pi_0(g|p))  (eq. 4)

The KL term is per token and lives in `training.ppo_math`; this module is the reward part.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

# Paper §3.2.3: "a threshold of 0.15 ... corresponding to a precision of 0.89 and a recall of 0.55
# evaluated on the Meta Safety test set".
SAFETY_THRESHOLD = 0.15
SAFETY_GUIDELINE = "safety"
# Probabilities are clamped this far from 0 and 1 before the logit, so a reward model that is
# certain (sigmoid rounds to exactly 0 or 1 in float32 for scores beyond about +-17) gives a large
# finite reward rather than an infinite one.
LOGIT_EPS = 1e-6


def is_safety_prompt(guideline: str | None) -> bool:
    """A prompt is a safety prompt when its exported row says it was annotated under the safety guideline."""
    return guideline == SAFETY_GUIDELINE


def logit(p: torch.Tensor, eps: float = LOGIT_EPS) -> torch.Tensor:
    """Inverse of the sigmoid, `log(p / (1 - p))`, with `p` clamped to `[eps, 1 - eps]`.

    Shapes: any -> same.
    """
    p = p.clamp(eps, 1.0 - eps)
    return torch.log(p) - torch.log1p(-p)


def whiten(values: torch.Tensor, *, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Normalise a batch of scores to zero mean and unit (unbiased) standard deviation.

    The paper whitens the final linear scores "in order to increase stability and balance properly
    with the KL penalty term". With `shift_mean=False` the mean is added back, so only the scale is
    normalised. Shapes: `(batch,)` -> `(batch,)`; needs at least two values.
    """
    if values.numel() < 2:
        raise ValueError(f"whitening needs at least two scores in the batch, got {values.numel()}")
    mean = values.mean()
    std = values.std(unbiased=True)
    whitened = (values - mean) / (std + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened


def combined_probability(
    helpfulness: torch.Tensor,
    safety: torch.Tensor,
    safety_prompt: torch.Tensor,
    *,
    threshold: float = SAFETY_THRESHOLD,
) -> torch.Tensor:
    """Eq. 3: the safety probability where the prompt is a safety prompt or the safety probability
    is below `threshold`, the helpfulness probability elsewhere.

    Shapes: `helpfulness`, `safety` (probabilities in [0, 1]) and `safety_prompt` (bool), all
    `(batch,)` -> `(batch,)`.
    """
    use_safety = safety_prompt.to(torch.bool) | (safety < threshold)
    return torch.where(use_safety, safety, helpfulness)


def combined_reward(
    helpfulness_scores: torch.Tensor,
    safety_scores: torch.Tensor,
    guidelines: Sequence[str | None],
    *,
    threshold: float = SAFETY_THRESHOLD,
) -> torch.Tensor:
    """The linear combined reward `logit(R_c)` from the two reward models' raw scalar outputs.

    The raw outputs are read as probabilities through the sigmoid (the threshold of eq. 3 is a
    probability). Whitening is left to the caller because it depends on the batch.
    Shapes: `(batch,)`, `(batch,)` and `batch` guideline names -> `(batch,)`.
    """
    if not (len(guidelines) == helpfulness_scores.shape[0] == safety_scores.shape[0]):
        raise ValueError(
            f"got {helpfulness_scores.shape[0]} helpfulness scores, {safety_scores.shape[0]} safety scores "
            f"and {len(guidelines)} guidelines; they must be one per response"
        )
    safety_prompt = torch.tensor([is_safety_prompt(g) for g in guidelines], device=safety_scores.device)
    probability = combined_probability(
        torch.sigmoid(helpfulness_scores), torch.sigmoid(safety_scores), safety_prompt, threshold=threshold
    )
    return logit(probability)
