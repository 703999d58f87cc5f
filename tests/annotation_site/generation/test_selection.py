"""Active selection: the choice of the pair among K candidates, scoring on tiny reward models, and
the queue filling that keeps a random share."""
import math

import pytest
from django.core.exceptions import ImproperlyConfigured

from annotation_site.generation import selection


def test_uncertainty_chooses_the_pair_whose_rewards_differ_least():
    scores = selection.pair_uncertainty([0.0, 2.0, 2.3, -1.0])
    assert scores[(1, 2)] == pytest.approx(0.3) and len(scores) == 6
    assert selection.choose(selection.UNCERTAINTY, scores) == (1, 2)


def test_disagreement_chooses_the_pair_the_two_reward_models_disagree_on_most():
    newer, older = [0.0, 1.0, 0.0], [0.0, -1.0, 0.0]
    scores = selection.pair_disagreement(newer, older)
    sigma = 1 / (1 + math.exp(-1))
    assert scores[(0, 1)] == pytest.approx(abs((1 - sigma) - sigma)) and scores[(0, 2)] == 0
    assert selection.choose(selection.DISAGREEMENT, scores) in {(0, 1), (1, 2)}
    assert selection.choose(selection.DISAGREEMENT, scores) == (0, 1)  # ties go to the first pair


def test_random_chooses_no_pair_by_score():
    with pytest.raises(ValueError):
        selection.choose(selection.RANDOM, {(0, 1): 1.0})


def test_the_policy_is_per_guideline_with_a_global_default(settings):
    settings.SELECTION_POLICY = "uncertainty"
    settings.SELECTION_POLICY_SAFETY = "disagreement"
    chosen = selection.SelectionSettings.from_settings()
    assert chosen.policy_for("helpfulness") == "uncertainty" and chosen.policy_for("safety") == "disagreement"


@pytest.mark.parametrize("name, value, message", [
    ("SELECTION_POLICY", "smart", "SELECTION_POLICY='smart'"),
    ("SELECTION_POLICY_HELPFULNESS", "best", "SELECTION_POLICY_HELPFULNESS='best'"),
    ("SELECTION_CANDIDATES", 2, "at least 3"),
    ("SELECTION_RANDOM_SHARE", 1.5, "SELECTION_RANDOM_SHARE"),
])
def test_a_bad_selection_setting_names_the_variable(settings, name, value, message):
    setattr(settings, name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        selection.SelectionSettings.from_settings()
