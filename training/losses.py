"""Reward-model loss maths of the Llama 2 paper (Touvron et al., 2023, §3.2.2), as small pure functions.

The recipe trains with TRL's RewardTrainer, whose `compute_loss` is eq. 2 when the batch carries a
`margin` column; these functions are the reference the tests hold the trainer to, and what turns a
rating into that margin.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# Table 27: the margin m(r) by rating, in the order of the rating scale (§3.2.1).
MARGIN_TABLES: dict[str, dict[str, float]] = {
    "small": {"significantly_better": 1.0, "better": 2 / 3, "slightly_better": 1 / 3, "negligibly_better": 0.0},
    "large": {"significantly_better": 3.0, "better": 2.0, "slightly_better": 1.0, "negligibly_better": 0.0},
    # The paper's baseline: plain binary ranking loss (eq. 1).
    "none": {"significantly_better": 0.0, "better": 0.0, "slightly_better": 0.0, "negligibly_better": 0.0},
}


def rating_margin(rating: str | None, table: str) -> float:
    """m(r) of Table 27 for one rating; pairs without a rating (e.g. imported data) get no margin."""
    if table not in MARGIN_TABLES:
        raise ValueError(f"margin table {table!r} is not one of {sorted(MARGIN_TABLES)}")
    if rating is None:
        return 0.0
    if rating not in MARGIN_TABLES[table]:
        raise ValueError(f"rating {rating!r} is not one of {list(MARGIN_TABLES[table])}")
    return MARGIN_TABLES[table][rating]


def ranking_loss(
    chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor, margins: torch.Tensor | None = None
) -> torch.Tensor:
    """Binary ranking loss with margin, eq. 2: mean of -log(sigmoid(r(x, y_c) - r(x, y_r) - m(r))).

    chosen_rewards, rejected_rewards: (batch,) scalar rewards of the chosen and rejected responses.
    margins: (batch,) m(r) of each pair, or None for eq. 1 (no margin).
    Returns a scalar tensor. A larger margin raises the loss for the same rewards, pushing the
    model to separate pairs that annotators found clearly different by more.
    """
    difference = chosen_rewards - rejected_rewards
    if margins is not None:
        difference = difference - margins
    return -F.logsigmoid(difference).mean()


def ranking_accuracy(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> torch.Tensor:
    """Fraction of pairs (batch,) where the chosen response scores strictly higher (Tables 7-8)."""
    return (chosen_rewards > rejected_rewards).float().mean()
