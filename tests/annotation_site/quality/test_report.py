"""The quality report on simulated annotators: careful, random and always-"A" annotators come out with
the gold accuracy, agreement and position-bias figures and flags one would expect."""
import random

import pytest

from annotation_site.annotation import services as annotation
from annotation_site.annotation.models import Comparison
from annotation_site.quality import selectors, services
from annotation_site.quality.models import Flag
from tests.annotation_site.quality.factories import make_annotator, make_gold, make_item, set_gold_rate, shown_letter_of

pytestmark = pytest.mark.django_db

ITEMS = 40
RATINGS = ["significantly_better", "better", "slightly_better", "negligibly_better"]


def answer(strategy: str, assignment, rng: random.Random) -> tuple[str, str]:
    better = shown_letter_of(assignment, assignment.item.sample_a_id)  # sample_a is the better one
    if strategy == "careful":
        return better, "significantly_better"
    if strategy == "always_a":
        return "A", "significantly_better"
    return rng.choice("AB"), rng.choice(RATINGS)


@pytest.fixture
def simulated():
    random.seed(1234)  # the claim's gold draws and shown orders
    rng = random.Random(99)  # the random annotator's answers
    set_gold_rate(0.4, too_fast_ms=1000)
    for _ in range(ITEMS):
        make_item(overlap=4)
    for _ in range(40):
        make_gold(weakest_rating="better")
    people = {name: make_annotator(name) for name in ("careful1", "careful2", "random", "always_a")}
    for _ in range(200):  # interleave the annotators, as real ones work at the same time
        progressed = False
        for name, person in people.items():
            assignment = annotation.assignment_claim_next(annotator=person)
            if assignment is None:
                continue
            progressed = True
            chosen, rating = answer(name.rstrip("12"), assignment, rng)
            annotation.comparison_submit(assignment=assignment, annotator=person, chosen=chosen, rating=rating)
        if not progressed:
            break
    # The stored time is capped at the wall time since the claim, milliseconds here: set what the
    # annotators would have spent (the always-"A" clicker 0.3 s an item, the others 9 s).
    Comparison.objects.update(time_spent_ms=9000)
    Comparison.objects.filter(annotator=people["always_a"]).update(time_spent_ms=300)
    report = selectors.quality_report(guideline_kind="helpfulness")
    return {row["username"]: row for row in report.annotators}, report


def test_careful_random_and_always_a_annotators_come_out_as_expected(simulated):
    rows, report = simulated
    # careful annotators: right on gold, agreeing, no flag
    for name in ("careful1", "careful2"):
        assert rows[name]["gold_answers"] >= 10
        assert rows[name]["gold_accuracy"] == 1.0
        assert rows[name]["flags"] == []
        assert 0.3 < rows[name]["share_a"] < 0.7
    assert rows["careful1"]["agreement_with_others"] > rows["random"]["agreement_with_others"] + 0.05
    # the random annotator fails gold and is flagged for it
    assert rows["random"]["gold_accuracy"] < 0.5
    assert any(flag.startswith("gold accuracy") for flag in rows["random"]["flags"])
    # the always-"A" clicker: position bias and speed
    assert rows["always_a"]["share_a"] == 1.0
    assert any("position bias" in flag for flag in rows["always_a"]["flags"])
    assert any("too fast" in flag for flag in rows["always_a"]["flags"])
    # agreement and alpha per week and rating; gold answers are scored, not counted as data
    summary = report.summary
    assert summary["alpha"]["helpfulness"] is not None and -1 <= summary["alpha"]["helpfulness"] <= 1
    assert summary["weeks"] and summary["weeks"][0]["items"] == ITEMS
    assert summary["agreement_by_rating"]["significantly_better"]["pairs"] > 0
    assert summary["comparisons"] == ITEMS * 4
    # the flags fill the review queue once
    new = services.flags_sync(guideline_kind="helpfulness")
    assert new > 0 and Flag.objects.count() == new
    assert services.flags_sync(guideline_kind="helpfulness") == 0
    assert {"failed_gold", "too_fast"} <= set(Flag.objects.values_list("reason", flat=True))
    assert selectors.review_queue().count() == new
