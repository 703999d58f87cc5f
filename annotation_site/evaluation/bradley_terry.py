"""Bradley-Terry strengths from pairwise votes, with bootstrap confidence intervals.

    P(i beats j) = 1 / (1 + exp(-(theta_i - theta_j)))

The fit is `choix.ilsr_pairwise_dense` (Maystre & Grossglauser's iterative Luce spectral ranking,
a maintained package that converges to the maximum-likelihood estimate), chosen over a logistic
regression because it takes the vote table as a dense count matrix: its cost depends on the number
of models, not the number of votes, so a million votes fit as fast as a hundred, and so do the
bootstrap refits. `alpha` is choix's regularisation: a model that won (or lost) every vote would
otherwise have an infinite strength; 0 gives the plain maximum-likelihood estimate.

Bootstrap (as Chatbot Arena reports its intervals): the N votes are resampled with replacement,
which for a count table is one multinomial draw of N over its cells, and the model refitted; the
interval is the percentiles of the refitted strengths.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_ALPHA = 0.01
# Strengths on the Elo-like scale the Arena shows: 400 points of rating per factor of 10 in odds.
ELO_SCALE = 400 / math.log(10)
ELO_BASE = 1000


def fit_strengths(wins: np.ndarray, *, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """Log-strengths `theta`, mean zero, from `wins[i, j]` = votes where model i beat model j.

    Shapes: `(models, models)` counts -> `(models,)`.
    """
    import choix

    wins = np.asarray(wins, dtype=np.float64)
    if wins.ndim != 2 or wins.shape[0] != wins.shape[1]:
        raise ValueError(f"the vote table must be a square matrix, got shape {wins.shape}")
    if wins.shape[0] < 2:
        return np.zeros(wins.shape[0])
    theta = choix.ilsr_pairwise_dense(wins, alpha=alpha, max_iter=1000, tol=1e-10)
    return theta - theta.mean()


@dataclass(frozen=True)
class Intervals:
    lower: np.ndarray  # (models,)
    upper: np.ndarray  # (models,)


def bootstrap_intervals(wins: np.ndarray, *, rounds: int = 200, level: float = 0.95, seed: int = 0,
                        alpha: float = DEFAULT_ALPHA) -> Intervals:
    """Percentile intervals of the strengths over `rounds` resamplings of the votes (seeded)."""
    wins = np.asarray(wins, dtype=np.float64)
    total = int(wins.sum())
    if rounds < 1 or total == 0:
        theta = fit_strengths(wins, alpha=alpha)
        return Intervals(theta.copy(), theta.copy())
    rng = np.random.default_rng(seed)
    cells = wins.ravel() / total
    fits = np.stack([
        fit_strengths(rng.multinomial(total, cells).reshape(wins.shape).astype(np.float64), alpha=alpha)
        for _ in range(rounds)
    ])
    tail = (1 - level) / 2 * 100
    return Intervals(np.percentile(fits, tail, axis=0), np.percentile(fits, 100 - tail, axis=0))


def elo(theta: np.ndarray | float) -> np.ndarray | float:
    """A log-strength on the Arena's Elo-like scale (1000 for the average model)."""
    return ELO_BASE + ELO_SCALE * theta
