import math

import pytest
import torch

from training.export_format import MARGIN_TABLES, rating_margin
from training.losses import ranking_accuracy, ranking_loss


def by_hand(chosen: float, rejected: float, margin: float) -> float:
    return -math.log(1 / (1 + math.exp(-(chosen - rejected - margin))))


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("small", [1.0, 2 / 3, 1 / 3, 0.0]),
        ("large", [3.0, 2.0, 1.0, 0.0]),
        ("none", [0.0, 0.0, 0.0, 0.0]),
    ],
)
def test_margin_tables_are_table_27(table, expected):
    ratings = ["significantly_better", "better", "slightly_better", "negligibly_better"]
    assert [rating_margin(rating, table) for rating in ratings] == pytest.approx(expected)


def test_pairs_without_a_rating_get_no_margin_and_bad_names_are_errors():
    assert rating_margin(None, "large") == 0.0
    with pytest.raises(ValueError, match="margin table 'huge'"):
        rating_margin("better", "huge")
    with pytest.raises(ValueError, match="rating 'much_better'"):
        rating_margin("much_better", "small")


def test_eq2_matches_values_computed_by_hand_for_each_table():
    chosen = torch.tensor([2.0, 0.5, -1.0, 0.3])
    rejected = torch.tensor([-1.0, 0.0, -0.5, 0.3])
    ratings = ["significantly_better", "better", "slightly_better", "negligibly_better"]
    for table in MARGIN_TABLES:
        margins = [rating_margin(r, table) for r in ratings]
        expected = sum(by_hand(c, r, m) for c, r, m in zip(chosen.tolist(), rejected.tolist(), margins)) / 4
        assert ranking_loss(chosen, rejected, torch.tensor(margins)).item() == pytest.approx(expected, rel=1e-6)
    # hand value for one pair: rewards 2 and -1, large margin 3 -> -log(sigmoid(0)) = log 2
    assert ranking_loss(torch.tensor([2.0]), torch.tensor([-1.0]), torch.tensor([3.0])).item() == pytest.approx(math.log(2))
    # without a margin: -log(sigmoid(3)) = log(1 + e^-3)
    assert ranking_loss(torch.tensor([2.0]), torch.tensor([-1.0])).item() == pytest.approx(math.log(1 + math.exp(-3)))


def test_a_margin_raises_the_loss_for_the_same_rewards():
    chosen, rejected = torch.tensor([1.0, 0.2]), torch.tensor([0.0, 0.1])
    none = ranking_loss(chosen, rejected)
    small = ranking_loss(chosen, rejected, torch.tensor([1.0, 1.0]))
    large = ranking_loss(chosen, rejected, torch.tensor([3.0, 3.0]))
    assert none < small < large


def test_accuracy_counts_strictly_higher_chosen_rewards():
    assert ranking_accuracy(torch.tensor([1.0, 0.0, 2.0, 0.5]), torch.tensor([0.0, 0.0, 3.0, 0.4])).item() == 0.5
