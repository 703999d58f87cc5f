"""Reward-model loss maths of the Llama 2 paper (Touvron et al., 2023, §3.2.2), as small pure functions.

The recipe trains with TRL's RewardTrainer, whose `compute_loss` is eq. 2 when the batch carries a
`margin` column; these functions are the reference the tests hold the trainer to. The margin of a
rating, m(r) of Table 27, is part of the export's contract: `training.export_format.rating_margin`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


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
