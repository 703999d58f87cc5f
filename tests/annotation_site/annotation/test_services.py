"""Claiming, submitting and skipping through the annotation services."""
import datetime as dt

import pytest
from django.utils import timezone

from annotation_site.annotation import selectors, services
from annotation_site.annotation.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    DialogueSource,
    Item,
    ItemStatus,
    SafetyBin,
)
from annotation_site.errors import ApplicationError, Conflict, NotFound
from tests.annotation_site.annotation.factories import make_annotator, make_demonstration_item, make_ready_item

pytestmark = pytest.mark.django_db


def _submit(assignment, annotator, **kwargs):
    kwargs.setdefault("chosen", "A")
    kwargs.setdefault("rating", "better")
    return services.comparison_submit(assignment=assignment, annotator=annotator, **kwargs)


def _shown(assignment, label):
    item = assignment.item
    first, second = (item.sample_b, item.sample_a) if assignment.flipped else (item.sample_a, item.sample_b)
    return first if label == "A" else second


def test_claim_takes_a_slot_and_a_reload_returns_the_same_claim():
    item = make_ready_item()
    annotator = make_annotator()
    first = services.assignment_claim_next(annotator=annotator)
    again = services.assignment_claim_next(annotator=annotator)
    item.refresh_from_db()
    assert first.pk == again.pk and first.item_id == item.pk
    assert item.open_slots == 0
    assert first.expires_at > timezone.now()


def test_claims_serve_higher_priority_items_first():
    make_ready_item(priority=0)
    urgent = make_ready_item(priority=10)
    assert services.assignment_claim_next(annotator=make_annotator()).item_id == urgent.pk


def test_an_item_with_overlap_two_goes_to_two_different_annotators_and_no_third():
    item = make_ready_item(overlap=2)
    first = services.assignment_claim_next(annotator=make_annotator("one"))
    second = services.assignment_claim_next(annotator=make_annotator("two"))
    assert first.item_id == second.item_id == item.pk
    assert services.assignment_claim_next(annotator=make_annotator("three")) is None


def test_an_annotator_is_never_given_the_same_item_twice():
    make_ready_item(overlap=3)
    annotator = make_annotator()
    assignment = services.assignment_claim_next(annotator=annotator)
    _submit(assignment, annotator)
    assert services.assignment_claim_next(annotator=annotator) is None


def test_submit_maps_the_shown_label_back_to_the_sample_and_stores_the_shown_order():
    make_ready_item()
    annotator = make_annotator()
    assignment = services.assignment_claim_next(annotator=annotator)
    comparison = _submit(assignment, annotator, chosen="B", rating="slightly_better")
    assert comparison.chosen == _shown(assignment, "B")
    assert comparison.rejected == _shown(assignment, "A")
    assert comparison.shown_order == ("ba" if assignment.flipped else "ab")
    assert comparison.rating == "slightly_better"
    assert comparison.guideline_kind == "helpfulness" and comparison.safety_bin == ""
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.SUBMITTED
    assert Item.objects.get(pk=assignment.item_id).status == ItemStatus.DONE


def test_both_shown_orders_occur_across_assignments():
    annotator = make_annotator()
    orders = set()
    for _ in range(40):
        make_ready_item()
        assignment = services.assignment_claim_next(annotator=annotator)
        orders.add(assignment.flipped)
        _submit(assignment, annotator)
    assert orders == {True, False}


@pytest.mark.parametrize("rating", ["", "much_better", "BETTER"])
def test_an_unknown_rating_is_refused(rating):
    make_ready_item()
    annotator = make_annotator()
    assignment = services.assignment_claim_next(annotator=annotator)
    with pytest.raises(ApplicationError, match="Unknown rating"):
        _submit(assignment, annotator, rating=rating)
    assert not Comparison.objects.exists()


def test_a_choice_other_than_a_or_b_is_refused():
    make_ready_item()
    annotator = make_annotator()
    assignment = services.assignment_claim_next(annotator=annotator)
    with pytest.raises(ApplicationError, match='"A" or "B"'):
        _submit(assignment, annotator, chosen="C")


def test_submitting_the_same_answer_twice_stores_one_comparison():
    make_ready_item()
    annotator = make_annotator()
    assignment = services.assignment_claim_next(annotator=annotator)
    first = _submit(assignment, annotator)
    second = _submit(assignment, annotator)
    assert first.pk == second.pk and Comparison.objects.count() == 1


@pytest.mark.parametrize("guideline_kind", ["helpfulness", "safety"])
def test_a_repeated_submit_with_a_different_answer_is_refused_with_the_stored_answer(guideline_kind):
    make_ready_item(guideline_kind=guideline_kind)
    annotator = make_annotator()
    assignment = services.assignment_claim_next(annotator=annotator)
    labels = {"response_a_is_safe": True, "response_b_is_safe": False} if guideline_kind == "safety" else {}
    first = _submit(assignment, annotator, chosen="A", rating="better", **labels)
    with pytest.raises(Conflict, match="first answer was kept") as refused:
        _submit(assignment, annotator, chosen="A", rating="slightly_better", **labels)
    assert refused.value.extra["stored"] == {
        "comparison": first.pk, "chosen": "A", "rating": "better",
        "response_a_is_safe": labels.get("response_a_is_safe"), "response_b_is_safe": labels.get("response_b_is_safe"),
    }  # fmt: skip
    first.refresh_from_db()
    assert (first.rating, first.chosen_id, Comparison.objects.count()) == ("better", _shown(assignment, "A").pk, 1)


def test_changed_safety_labels_alone_are_a_different_answer():
    make_ready_item(guideline_kind="safety")
    annotator = make_annotator()
    assignment = services.assignment_claim_next(annotator=annotator)
    _submit(assignment, annotator, chosen="A", response_a_is_safe=True, response_b_is_safe=True)
    with pytest.raises(Conflict):
        _submit(assignment, annotator, chosen="A", response_a_is_safe=True, response_b_is_safe=False)


def test_an_annotator_amends_their_comparison_and_the_change_is_recorded():
    make_ready_item(guideline_kind="safety")
    annotator = make_annotator()
    assignment = services.assignment_claim_next(annotator=annotator)
    comparison = _submit(assignment, annotator, chosen="A", rating="better", response_a_is_safe=True, response_b_is_safe=True)
    amended = services.comparison_amend(
        comparison_id=comparison.pk, annotator=annotator, chosen="B", rating="slightly_better",
        response_a_is_safe=False, response_b_is_safe=True,
    )  # fmt: skip
    stored = Comparison.objects.get(pk=comparison.pk)
    assert (stored.chosen_id, stored.rejected_id) == (_shown(assignment, "B").pk, _shown(assignment, "A").pk)
    assert (stored.rating, stored.chosen_is_safe, stored.rejected_is_safe) == ("slightly_better", True, False)
    assert stored.safety_bin == SafetyBin.CHOSEN_SAFE_OTHER_UNSAFE and amended.chosen_as_shown == "B"
    (change,) = stored.amendments.all()
    assert change.annotator == annotator and change.amended_at >= stored.created_at
    assert (change.old_chosen_id, change.old_rating, change.old_safety_bin) == (_shown(assignment, "A").pk, "better", "both_safe")
    assert (change.new_chosen_id, change.new_rating, change.new_safety_bin) == (
        _shown(assignment, "B").pk, "slightly_better", "chosen_safe_other_unsafe"
    )
    # The same answer again changes and records nothing.
    services.comparison_amend(
        comparison_id=comparison.pk, annotator=annotator, chosen="B", rating="slightly_better",
        response_a_is_safe=False, response_b_is_safe=True,
    )  # fmt: skip
    assert stored.amendments.count() == 1


def test_an_amendment_follows_the_submit_rules():
    make_ready_item(guideline_kind="safety")
    annotator = make_annotator()
    assignment = services.assignment_claim_next(annotator=annotator)
    comparison = _submit(assignment, annotator, chosen="A", response_a_is_safe=True, response_b_is_safe=True)
    with pytest.raises(ApplicationError, match="never used"):
        services.comparison_amend(
            comparison_id=comparison.pk, annotator=annotator, chosen="A", rating="better",
            response_a_is_safe=False, response_b_is_safe=True,
        )  # fmt: skip
    assert not comparison.amendments.exists()


def test_nobody_amends_someone_elses_comparison():
    make_ready_item()
    owner, intruder = make_annotator("owner"), make_annotator("intruder")
    assignment = services.assignment_claim_next(annotator=owner)
    comparison = _submit(assignment, owner)
    with pytest.raises(NotFound):
        services.comparison_amend(comparison_id=comparison.pk, annotator=intruder, chosen="B", rating="better")


def test_a_comparison_in_a_closed_batch_can_no_longer_be_amended():
    from annotation_site.batches.services import batch_close

    make_ready_item()
    annotator = make_annotator()
    assignment = services.assignment_claim_next(annotator=annotator)
    comparison = _submit(assignment, annotator, chosen="A")
    batch, _ = batch_close(enqueue_export=False, now=timezone.now() + dt.timedelta(seconds=1))
    with pytest.raises(Conflict, match=f"batch {batch.week}, which is closed"):
        services.comparison_amend(comparison_id=comparison.pk, annotator=annotator, chosen="B", rating="better")
    comparison.refresh_from_db()
    assert comparison.chosen_id == _shown(assignment, "A").pk and not comparison.amendments.exists()


def test_a_repeated_demonstration_with_a_different_text_is_refused_with_the_stored_text():
    make_demonstration_item()
    annotator = make_annotator()
    assignment = services.assignment_claim_next(annotator=annotator)
    first = services.demonstration_submit(assignment=assignment, annotator=annotator, text="Sunlight bends.")
    assert services.demonstration_submit(assignment=assignment, annotator=annotator, text="Sunlight bends.").pk == first.pk
    with pytest.raises(Conflict, match="first response was kept") as refused:
        services.demonstration_submit(assignment=assignment, annotator=annotator, text="Something else.")
    assert refused.value.extra["stored"] == {"demonstration": first.pk, "text": "Sunlight bends."}


def test_an_annotator_cannot_submit_for_another():
    make_ready_item()
    owner, intruder = make_annotator("owner"), make_annotator("intruder")
    assignment = services.assignment_claim_next(annotator=owner)
    with pytest.raises(NotFound):
        _submit(assignment, intruder)
    assert not Comparison.objects.exists()


@pytest.mark.parametrize(
    ("a_safe", "b_safe", "chosen", "expected"),
    [
        (True, False, "A", SafetyBin.CHOSEN_SAFE_OTHER_UNSAFE),
        (True, True, "B", SafetyBin.BOTH_SAFE),
        (False, False, "A", SafetyBin.BOTH_UNSAFE),
        (False, True, "B", SafetyBin.CHOSEN_SAFE_OTHER_UNSAFE),
    ],
)
def test_safety_labels_give_the_safety_bin(a_safe, b_safe, chosen, expected):
    make_ready_item(guideline_kind="safety")
    annotator = make_annotator()
    assignment = services.assignment_claim_next(annotator=annotator)
    comparison = _submit(assignment, annotator, chosen=chosen, response_a_is_safe=a_safe, response_b_is_safe=b_safe)
    assert comparison.safety_bin == expected
    assert comparison.chosen_is_safe == (a_safe if chosen == "A" else b_safe)
    assert comparison.rejected_is_safe == (b_safe if chosen == "A" else a_safe)


def test_choosing_the_unsafe_response_over_a_safe_one_is_refused_with_a_clear_message():
    make_ready_item(guideline_kind="safety")
    annotator = make_annotator()
    assignment = services.assignment_claim_next(annotator=annotator)
    with pytest.raises(ApplicationError, match="chosen response is labelled unsafe while the other is safe"):
        _submit(assignment, annotator, chosen="A", response_a_is_safe=False, response_b_is_safe=True)
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.CLAIMED and not Comparison.objects.exists()


def test_a_safety_task_needs_both_labels_and_a_helpfulness_task_takes_none():
    make_ready_item(guideline_kind="safety")
    make_ready_item(guideline_kind="helpfulness")
    annotator = make_annotator()
    safety = services.assignment_claim_next(annotator=annotator, guideline_kind="safety")
    with pytest.raises(ApplicationError, match="label for both responses"):
        _submit(safety, annotator, response_a_is_safe=True)
    helpfulness = services.assignment_claim_next(annotator=annotator, guideline_kind="helpfulness")
    with pytest.raises(ApplicationError, match="safety tasks only"):
        _submit(helpfulness, annotator, response_a_is_safe=True, response_b_is_safe=True)


def test_skip_needs_a_reason_and_frees_the_slot_for_someone_else():
    item = make_ready_item()
    annotator, other = make_annotator("one"), make_annotator("two")
    assignment = services.assignment_claim_next(annotator=annotator)
    with pytest.raises(ApplicationError, match="Say why"):
        services.assignment_skip(assignment=assignment, annotator=annotator, reason="  ")
    services.assignment_skip(assignment=assignment, annotator=annotator, reason="unclear prompt")
    assignment.refresh_from_db()
    assert (assignment.status, assignment.skip_reason) == (AssignmentStatus.SKIPPED, "unclear prompt")
    assert services.assignment_claim_next(annotator=annotator) is None
    assert services.assignment_claim_next(annotator=other).item_id == item.pk
    with pytest.raises(Conflict, match="skipped"):
        _submit(assignment, annotator)


def test_an_expired_claim_returns_its_slot_to_other_annotators():
    item = make_ready_item()
    slow, fast = make_annotator("slow"), make_annotator("fast")
    stale = services.assignment_claim_next(annotator=slow)
    Assignment.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    taken = services.assignment_claim_next(annotator=fast)
    assert taken.item_id == item.pk
    stale.refresh_from_db()
    assert stale.status == AssignmentStatus.EXPIRED
    with pytest.raises(Conflict, match="expired"):
        _submit(stale, slow)


def test_a_late_submit_is_accepted_while_the_slot_is_still_free():
    item = make_ready_item()
    annotator = make_annotator()
    stale = services.assignment_claim_next(annotator=annotator)
    Assignment.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert services.assignments_expire() == 1
    comparison = _submit(stale, annotator)
    item.refresh_from_db()
    assert comparison.assignment_id == stale.pk and item.open_slots == 0 and item.status == ItemStatus.DONE


def test_time_spent_is_the_active_time_capped_by_the_wall_time():
    make_ready_item()
    make_ready_item()
    annotator = make_annotator()
    first = services.assignment_claim_next(annotator=annotator)
    Assignment.objects.filter(pk=first.pk).update(claimed_at=timezone.now() - dt.timedelta(seconds=20))
    assert _submit(first, annotator, active_ms=12_000).time_spent_ms == 12_000
    second = services.assignment_claim_next(annotator=annotator)
    Assignment.objects.filter(pk=second.pk).update(claimed_at=timezone.now() - dt.timedelta(seconds=5))
    assert 5_000 <= _submit(second, annotator, active_ms=3_600_000).time_spent_ms < 6_000


def test_progress_counts_this_iso_week_against_the_quota():
    annotator = make_annotator(weekly_quota=4)
    for _ in range(3):
        make_ready_item()
        _submit(services.assignment_claim_next(annotator=annotator), annotator)
    old = Comparison.objects.first()
    last_week = selectors.iso_week_start(timezone.now()) - dt.timedelta(seconds=1)
    Comparison.objects.filter(pk=old.pk).update(created_at=last_week)
    progress = selectors.annotator_progress(annotator=annotator)
    assert (progress.done, progress.quota, progress.fraction) == (2, 4, 0.5)
    assert progress.week_start.weekday() == 0 and progress.week_start.hour == 0


def test_iso_week_starts_on_monday_midnight_utc():
    sunday_night = dt.datetime(2026, 11, 29, 23, 59, tzinfo=dt.timezone.utc)
    assert selectors.iso_week_start(sunday_night) == dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)


def test_continuing_a_dialogue_queues_the_chosen_response_and_the_new_message_first_in_line():
    make_ready_item()
    annotator = make_annotator()
    assignment = services.assignment_claim_next(annotator=annotator)
    comparison = _submit(assignment, annotator, chosen="A")
    item = services.dialogue_continue(comparison=comparison, annotator=annotator, message="And for a soft yolk?")
    assert item.status == ItemStatus.NEEDS_SAMPLES and item.priority == services.ANNOTATOR_PRIORITY
    assert item.dialogue.turns[-2:] == [
        {"role": "assistant", "content": _shown(assignment, "A").text},
        {"role": "user", "content": "And for a soft yolk?"},
    ]
    assert item.dialogue.source == DialogueSource.CONTINUATION and item.dialogue.continues == comparison
    with pytest.raises(NotFound):
        services.dialogue_continue(comparison=comparison, annotator=make_annotator("other"), message="hi")


def test_a_demonstration_item_is_answered_with_text_once():
    item = make_demonstration_item()
    annotator = make_annotator()
    assignment = services.assignment_claim_next(annotator=annotator)
    assert assignment.item_id == item.pk
    with pytest.raises(ApplicationError, match="asks for a written response"):
        _submit(assignment, annotator)
    with pytest.raises(ApplicationError, match="Write the ideal response"):
        services.demonstration_submit(assignment=assignment, annotator=annotator, text=" ")
    first = services.demonstration_submit(assignment=assignment, annotator=annotator, text="Boil it for 8 minutes.")
    again = services.demonstration_submit(assignment=assignment, annotator=annotator, text="Boil it for 8 minutes.")
    assert first.pk == again.pk and first.text == "Boil it for 8 minutes."
    assert selectors.annotator_progress(annotator=annotator).demonstrations == 1


def test_a_new_guideline_version_keeps_the_old_one_and_new_claims_record_it():
    old = services.guideline_publish(kind="helpfulness", title="Helpfulness", text="v1 text")
    new = services.guideline_publish(kind="helpfulness", title="Helpfulness", text="v2 text")
    assert (old.version, new.version) == (1, 2)
    assert selectors.guideline_current(kind="helpfulness") == new
    make_ready_item()
    annotator = make_annotator()
    comparison = _submit(services.assignment_claim_next(annotator=annotator), annotator)
    assert comparison.guideline == new
