"""The arithmetic of quality control, as small pure functions over plain values.

The selectors read rows from the database and call these; tests check them against values
computed by hand. Krippendorff's alpha comes from the `krippendorff` package.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from training.export_format import RATINGS

# Strength of each rating on the paper's scale (Llama 2 §3.2.1), strongest first: 4 ... 1.
RATING_LEVELS = {rating: len(RATINGS) - index for index, rating in enumerate(RATINGS)}
# The ordinal scale alpha is computed on: "B significantly better" (-4) ... "A significantly better" (+4),
# relative to the item's own sample order (not the order an annotator was shown), with no zero:
# the paper's scale has no "equal".
SIGNED_SCALE = (-4, -3, -2, -1, 1, 2, 3, 4)


def signed_level(*, chose_sample_a: bool, rating: str) -> int | None:
    """The annotator's answer on the 8-level signed scale; None for an unrated comparison."""
    level = RATING_LEVELS.get(rating)
    if level is None:
        return None
    return level if chose_sample_a else -level


@dataclass(frozen=True)
class GoldVerdict:
    correct: bool
    reason: str  # "" when correct, else what was wrong


def gold_verdict(
    *,
    chose_better: bool,
    rating: str,
    weakest_rating: str,
    chosen_is_safe: bool | None,
    rejected_is_safe: bool | None,
    better_is_safe: bool | None,
    other_is_safe: bool | None,
) -> GoldVerdict:
    """Score one answer on a gold item: the right side, at least the weakest strength that counts,
    and the expected safety labels where the gold item gives them."""
    if not chose_better:
        return GoldVerdict(False, "chose the worse response")
    if weakest_rating and RATING_LEVELS.get(rating, 0) < RATING_LEVELS[weakest_rating]:
        return GoldVerdict(False, f"rated {rating or 'without a strength'}, weaker than {weakest_rating}")
    # The annotator chose the better response, so their chosen/rejected labels are better/other.
    if better_is_safe is not None and chosen_is_safe is not None and chosen_is_safe != better_is_safe:
        return GoldVerdict(False, "labelled the better response's safety wrong")
    if other_is_safe is not None and rejected_is_safe is not None and rejected_is_safe != other_is_safe:
        return GoldVerdict(False, "labelled the other response's safety wrong")
    return GoldVerdict(True, "")


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95% by default); None without trials.

    Written out rather than imported: it is four lines, and statsmodels would be a large
    dependency for it.
    """
    if trials <= 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def krippendorff_alpha(units: Iterable[Sequence[int]]) -> float | None:
    """Krippendorff's alpha (ordinal) over units, each the signed levels its annotators gave.

    Units with fewer than two answers carry no information about agreement and are left out;
    None when no unit has two answers, or when every answer is the same value (alpha undefined).
    """
    import krippendorff

    index = {value: position for position, value in enumerate(SIGNED_SCALE)}
    rows = []
    for answers in units:
        if len(answers) < 2:
            continue
        counts = [0] * len(SIGNED_SCALE)
        for answer in answers:
            counts[index[answer]] += 1
        rows.append(counts)
    if not rows:
        return None
    value_counts = np.asarray(rows, dtype=np.int64)
    if np.count_nonzero(value_counts.sum(axis=0)) < 2:
        return None
    return float(
        krippendorff.alpha(value_counts=value_counts, value_domain=list(SIGNED_SCALE), level_of_measurement="ordinal")
    )


@dataclass
class PairTally:
    """Agreement on the chosen side between one annotator and the others on shared items."""

    agreements: int = 0
    pairs: int = 0

    @property
    def rate(self) -> float | None:
        return self.agreements / self.pairs if self.pairs else None


def pairwise_side_agreement(answers: Sequence[tuple[int, bool]]) -> dict[int, tuple[int, int]]:
    """For one item's answers [(annotator id, chose sample A)], each annotator's
    (agreements, pairs) with every other annotator of the item."""
    result: dict[int, tuple[int, int]] = {}
    for annotator, side in answers:
        others = [other_side for other, other_side in answers if other != annotator]
        result[annotator] = (sum(1 for other_side in others if other_side == side), len(others))
    return result
