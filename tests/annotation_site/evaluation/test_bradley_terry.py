"""Bradley-Terry strengths against a second method, and bootstrap intervals against known strengths."""
import numpy as np
import pytest
from scipy.optimize import minimize

from annotation_site.evaluation.bradley_terry import bootstrap_intervals, elo, fit_strengths


def maximum_likelihood_by_scipy(wins: np.ndarray) -> np.ndarray:
    """The Bradley-Terry MLE by direct minimisation of the negative log-likelihood (first model pinned at 0)."""
    def negative_log_likelihood(free):
        theta = np.concatenate([[0.0], free])
        return float((wins * np.logaddexp(0.0, -(theta[:, None] - theta[None, :]))).sum())

    result = minimize(negative_log_likelihood, np.zeros(len(wins) - 1), method="BFGS", options={"gtol": 1e-10})
    theta = np.concatenate([[0.0], result.x])
    return theta - theta.mean()


def test_strengths_match_the_maximum_likelihood_computed_by_scipy():
    wins = np.array([[0, 7, 9, 5], [3, 0, 6, 4], [1, 4, 0, 6], [2, 3, 2, 0]], dtype=float)
    assert fit_strengths(wins, alpha=0.0) == pytest.approx(maximum_likelihood_by_scipy(wins), abs=1e-5)


def test_two_models_by_hand():
    # P(a beats b) = 3/4 = sigmoid(theta_a - theta_b): the difference is log 3, split around zero.
    theta = fit_strengths(np.array([[0, 30], [10, 0]], dtype=float), alpha=0.0)
    assert theta == pytest.approx([np.log(3) / 2, -np.log(3) / 2], abs=1e-6)
    assert elo(theta[0]) - elo(theta[1]) == pytest.approx(400 * np.log10(3))


def test_a_model_that_won_every_vote_gets_a_finite_strength_above_the_others():
    wins = np.array([[0, 5, 4], [0, 0, 3], [0, 2, 0]], dtype=float)
    theta = fit_strengths(wins)
    assert np.isfinite(theta).all() and theta.argmax() == 0 and theta.sum() == pytest.approx(0)


def simulated_votes(theta: np.ndarray, votes_per_pair: int, rng) -> np.ndarray:
    wins = np.zeros((len(theta), len(theta)))
    for i in range(len(theta)):
        for j in range(i + 1, len(theta)):
            won = rng.binomial(votes_per_pair, 1 / (1 + np.exp(-(theta[i] - theta[j]))))
            wins[i, j], wins[j, i] = won, votes_per_pair - won
    return wins


def test_bootstrap_intervals_cover_the_true_strengths_in_most_seeded_runs():
    truth = np.array([1.0, 0.3, -0.2, -1.1])
    covered = total = 0
    for seed in range(20):
        wins = simulated_votes(truth, 120, np.random.default_rng(seed))
        intervals = bootstrap_intervals(wins, rounds=200, seed=seed)
        covered += int(((intervals.lower <= truth) & (truth <= intervals.upper)).sum())
        total += len(truth)
    # Nominal 95%; a percentile bootstrap of a regularised fit covers somewhat less. Far from 100%
    # too, or the intervals would be uselessly wide.
    assert 0.8 <= covered / total <= 1.0


def test_intervals_hold_the_estimate_and_narrow_with_more_votes():
    truth = np.array([0.5, 0.0, -0.5])
    rng = np.random.default_rng(7)
    few, many = simulated_votes(truth, 20, rng), simulated_votes(truth, 2000, rng)
    narrow, wide = bootstrap_intervals(many, rounds=100), bootstrap_intervals(few, rounds=100)
    theta = fit_strengths(many)
    assert (narrow.lower <= theta).all() and (theta <= narrow.upper).all()
    assert ((narrow.upper - narrow.lower) < (wide.upper - wide.lower)).all()


def test_the_bootstrap_is_seeded():
    wins = np.array([[0, 7, 9], [3, 0, 6], [1, 4, 0]], dtype=float)
    first, second = bootstrap_intervals(wins, rounds=30, seed=3), bootstrap_intervals(wins, rounds=30, seed=3)
    assert first.lower.tolist() == second.lower.tolist() and first.upper.tolist() == second.upper.tolist()
