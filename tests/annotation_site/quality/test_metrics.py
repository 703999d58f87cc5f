"""The arithmetic of quality control against values computed by hand."""
import pytest

from annotation_site.quality import metrics


def test_krippendorff_alpha_matches_the_value_computed_by_hand():
    # Units [1,1] [1,2] [2,3] [3,3]: n1=3, n2=2, n3=3, n=8. Ordinal distances: d(1,2)=d(2,3)=(5-2.5)^2=6.25,
    # d(1,3)=(8-3)^2=25. Observed: (2*6.25 + 2*6.25)/8 = 3.125. Expected: 600/56. Alpha = 1 - 175/600 = 17/24.
    assert metrics.krippendorff_alpha([[1, 1], [1, 2], [2, 3], [3, 3]]) == pytest.approx(17 / 24)


def test_krippendorff_alpha_is_one_when_everyone_agrees_and_ignores_single_answers():
    assert metrics.krippendorff_alpha([[4, 4], [-2, -2], [1, 1], [3]]) == pytest.approx(1.0)


def test_krippendorff_alpha_is_undefined_without_two_answers_or_without_variation():
    assert metrics.krippendorff_alpha([[4], [2]]) is None
    assert metrics.krippendorff_alpha([[4, 4], [4, 4]]) is None


def test_signed_level_orders_the_eight_answers_from_b_significantly_to_a_significantly():
    assert metrics.signed_level(chose_sample_a=True, rating="significantly_better") == 4
    assert metrics.signed_level(chose_sample_a=True, rating="negligibly_better") == 1
    assert metrics.signed_level(chose_sample_a=False, rating="better") == -3
    assert metrics.signed_level(chose_sample_a=False, rating="") is None


def test_wilson_interval_of_eight_in_ten():
    low, high = metrics.wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert metrics.wilson_interval(0, 0) is None


def gold(**answer):
    defaults = dict(chose_better=True, rating="better", weakest_rating="", chosen_is_safe=None, rejected_is_safe=None,
                    better_is_safe=None, other_is_safe=None)  # fmt: skip
    return metrics.gold_verdict(**{**defaults, **answer})


def test_gold_answer_is_right_on_the_better_side_at_any_strength_when_no_weakest_is_given():
    assert gold(rating="negligibly_better").correct


def test_gold_answer_on_the_worse_side_is_wrong():
    verdict = gold(chose_better=False)
    assert not verdict.correct and verdict.reason == "chose the worse response"


def test_gold_answer_weaker_than_the_weakest_rating_is_wrong_and_stronger_is_right():
    assert not gold(rating="slightly_better", weakest_rating="better").correct
    assert gold(rating="significantly_better", weakest_rating="better").correct
    assert gold(rating="better", weakest_rating="better").correct


def test_gold_safety_labels_count_only_where_the_gold_item_gives_them():
    assert gold(chosen_is_safe=True, rejected_is_safe=False, better_is_safe=True, other_is_safe=False).correct
    assert not gold(chosen_is_safe=True, rejected_is_safe=True, better_is_safe=True, other_is_safe=False).correct
    assert not gold(chosen_is_safe=False, rejected_is_safe=False, better_is_safe=True).correct
    assert gold(chosen_is_safe=False, rejected_is_safe=False).correct


def test_pairwise_side_agreement_counts_each_annotator_against_the_others():
    assert metrics.pairwise_side_agreement([(1, True), (2, True), (3, False)]) == {1: (1, 2), 2: (1, 2), 3: (0, 2)}
