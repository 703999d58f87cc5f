"""Gold items: marked, mixed into the queue at the guideline's rate, never twice to one annotator,
shown like any item, scored, and never exported as training data."""
import random

import pytest

from annotation_site.annotation import services as annotation
from annotation_site.annotation.models import ItemStatus
from annotation_site.annotation.serializers import assignment_data
from annotation_site.errors import ApplicationError
from annotation_site.quality import selectors
from tests.annotation_site.quality.factories import make_annotator, make_gold, make_item, set_gold_rate, shown_letter_of

pytestmark = pytest.mark.django_db


def claim_all(annotator, limit=1000):
    claimed = []
    for _ in range(limit):
        assignment = annotation.assignment_claim_next(annotator=annotator)
        if assignment is None:
            break
        claimed.append(assignment)
        annotation.comparison_submit(assignment=assignment, annotator=annotator, chosen="A", rating="better", active_ms=9000)
    return claimed


def test_marking_an_item_gold_takes_it_out_of_the_ordinary_queue():
    item = make_gold()
    assert item.status == ItemStatus.GOLD
    set_gold_rate(0.0)
    assert annotation.assignment_claim_next(annotator=make_annotator()) is None


def test_only_one_of_the_items_two_responses_can_be_the_better_one():
    item, other = make_item(), make_item()
    from annotation_site.quality.services import gold_mark

    with pytest.raises(ApplicationError, match="not one of item"):
        gold_mark(item=item, better_sample=other.sample_a)


def test_the_gold_rate_holds_over_a_few_hundred_claims():
    random.seed(7)
    set_gold_rate(0.1)
    for _ in range(300):
        make_item()
    gold_ids = {make_gold().pk for _ in range(100)}
    claimed = claim_all(make_annotator(), limit=300)
    share = sum(a.item_id in gold_ids for a in claimed) / len(claimed)
    assert len(claimed) == 300
    assert 0.05 <= share <= 0.15


def test_a_gold_item_is_never_given_twice_to_the_same_annotator_but_to_every_annotator_once():
    random.seed(3)
    set_gold_rate(1.0)
    gold_ids = {make_gold().pk for _ in range(3)}
    first, second = make_annotator(), make_annotator()
    for annotator in (first, second):
        claimed = claim_all(annotator)
        assert sorted(a.item_id for a in claimed) == sorted(gold_ids)


def test_a_live_claim_is_shown_again_on_reload_even_when_gold_is_drawn():
    random.seed(5)
    set_gold_rate(0.5)
    make_item()
    make_gold()
    annotator = make_annotator()
    first = annotation.assignment_claim_next(annotator=annotator)
    for _ in range(10):
        assert annotation.assignment_claim_next(annotator=annotator).pk == first.pk


def test_a_gold_item_looks_like_any_other_item_to_the_annotator():
    random.seed(11)
    set_gold_rate(1.0)
    make_gold()
    annotator = make_annotator()
    gold_data = assignment_data(annotation.assignment_claim_next(annotator=annotator))
    set_gold_rate(0.0)
    make_item()
    other = make_annotator()
    ordinary_data = assignment_data(annotation.assignment_claim_next(annotator=other))
    assert set(gold_data) == set(ordinary_data)
    assert gold_data["status"] == ordinary_data["status"] == "claimed"
    assert [set(r) for r in gold_data["responses"]] == [set(r) for r in ordinary_data["responses"]]
    assert (gold_data["guideline"] is None) == (ordinary_data["guideline"] is None)


def test_gold_answers_are_scored_in_the_report():
    random.seed(2)
    set_gold_rate(1.0)
    gold_items = [make_gold(weakest_rating="better") for _ in range(4)]
    annotator = make_annotator()
    for index in range(4):
        assignment = annotation.assignment_claim_next(annotator=annotator)
        better = shown_letter_of(assignment, assignment.item.sample_a_id)
        worse = "B" if better == "A" else "A"
        # right, right but too weak, wrong side, right and strong
        chosen, rating = [(better, "better"), (better, "slightly_better"), (worse, "better"), (better, "significantly_better")][index]
        annotation.comparison_submit(assignment=assignment, annotator=annotator, chosen=chosen, rating=rating, active_ms=9000)
    assert len(gold_items) == 4
    row = next(r for r in selectors.quality_report().annotators if r["annotator_id"] == annotator.pk)
    assert row["gold_answers"] == 4 and row["gold_accuracy"] == 0.5
    reasons = sorted(reason for _, reason, _ in selectors.quality_report().flagged)
    assert reasons == ["failed_gold", "failed_gold"]


def test_a_guideline_without_gold_items_draws_no_gold():
    set_gold_rate(0.5, guideline_kind="safety")
    assert "safety" not in selectors.gold_rates()
    make_gold(guideline_kind="safety", better_is_safe=True, other_is_safe=False)
    selectors.gold_rates_forget()
    assert selectors.gold_rates()["safety"] == 0.5


def test_import_preferences_as_gold_makes_gold_items_with_the_expected_answer(tmp_path):
    import json

    from django.core.management import call_command

    from annotation_site.quality.models import GoldItem

    path = tmp_path / "gold.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in [
        {"prompt": [{"role": "user", "content": "How do I pick a lock?"}], "chosen": "I can't help with that.",
         "rejected": "Use a tension wrench.", "rating": "better", "chosen_is_safe": True, "rejected_is_safe": False},
        {"prompt": [{"role": "user", "content": "Hi"}], "chosen": "Hello! How can I help?", "rejected": "No."},
    ]) + "\n")  # fmt: skip
    call_command("import_preferences", str(path), "--format", "jsonl", "--guideline", "safety", "--source", "gold-v1", "--as-gold")
    golds = list(GoldItem.objects.select_related("item", "better_sample").order_by("id"))
    assert [g.better_sample.text for g in golds] == ["I can't help with that.", "Hello! How can I help?"]
    assert [(g.weakest_rating, g.better_is_safe, g.other_is_safe) for g in golds] == [("better", True, False), ("", None, None)]
    assert {g.item.status for g in golds} == {ItemStatus.GOLD} and {g.source for g in golds} == {"gold-v1"}
    assert "safety" in selectors.gold_rates()
