"""Answers to a claimed item: a comparison (the hot path), a demonstration or a skip, and an
annotator amending their comparison."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from annotation_site.annotation.models import (
    TIME_SPENT_MAX_MS,
    Assignment,
    AssignmentStatus,
    Comparison,
    ComparisonAmendment,
    Demonstration,
    GuidelineKind,
    Item,
    ItemStatus,
    Rating,
    SafetyBin,
    TaskKind,
)
from annotation_site.batches import selectors as batch_selectors
from annotation_site.db_functions import DatabaseFunction, RowReads, uses_database_functions
from annotation_site.errors import ApplicationError, Conflict, NotFound


def _lock_own_assignment(*, assignment: Assignment, annotator) -> Assignment:
    # Sliced rather than .first(): one row by primary key needs no ORDER BY to compose.
    found = Assignment.objects.select_for_update(of=("self",)).select_related("item").filter(
        pk=assignment.pk, annotator=annotator
    )[:1]
    locked = found[0] if found else None
    if locked is None:
        raise NotFound("No such assignment of yours.")
    return locked


ANSWERS = {
    TaskKind.COMPARISON: (Comparison, "a comparison"),
    TaskKind.DEMONSTRATION: (Demonstration, "a written response"),
}


YOU_SKIPPED = "You skipped this item; it can no longer be submitted."
CLAIM_TAKEN = "Your claim on this item expired and another annotator took it; load the next item."
ANSWER_REMOVED = "Your answer to this item was removed by an admin and cannot be submitted again; load the next item."


def _wrong_task(task_kind: str, wanted_kind: str) -> ApplicationError:
    return ApplicationError(f"This item asks for {ANSWERS[task_kind][1]}, not {ANSWERS[wanted_kind][1]}.")


def _lock_for_answer(*, assignment: Assignment, annotator, task_kind: str):
    """Lock the annotator's own assignment to answer it; returns (locked, the earlier answer or None).

    A submitted assignment gives back its answer (a double submit stores one); a skipped one is
    refused; an expired one takes its slot back if no one else has it. Call inside a transaction:
    the caller's later validation errors roll the slot back too.
    """
    locked = _lock_own_assignment(assignment=assignment, annotator=annotator)
    if locked.item.task_kind != task_kind:
        raise _wrong_task(locked.item.task_kind, task_kind)
    if locked.status == AssignmentStatus.SUBMITTED:
        answer = ANSWERS[task_kind][0].objects.filter(assignment=locked).first()
        if answer is None:
            raise Conflict(ANSWER_REMOVED)
        return locked, answer
    if locked.status == AssignmentStatus.SKIPPED:
        raise Conflict(YOU_SKIPPED)
    if locked.status == AssignmentStatus.EXPIRED:
        _retake_expired_slot(locked)
    return locked, None


def _retake_expired_slot(locked: Assignment) -> None:
    """A late submit of an expired claim is accepted while the item still has a free slot."""
    taken = Item.objects.filter(pk=locked.item_id, open_slots__gt=0).update(open_slots=F("open_slots") - 1)
    if not taken:
        raise Conflict(CLAIM_TAKEN)


def _refuse_negative_time(active_ms: int | None) -> None:
    if active_ms is not None and active_ms < 0:
        raise ApplicationError("Time spent cannot be negative.")


def _time_spent_ms(locked: Assignment, active_ms: int | None, now: dt.datetime) -> int:
    """The client's active time on the item, never more than the wall time since the claim nor the
    column's range (as `annotation_submit_comparison` stores it)."""
    wall_ms = min(max(0, int((now - locked.claimed_at).total_seconds() * 1000)), TIME_SPENT_MAX_MS)
    return wall_ms if active_ms is None else min(int(active_ms), wall_ms)


def _finish(locked: Assignment, status: str, now: dt.datetime) -> None:
    locked.status = status
    locked.finished_at = now
    locked.save(update_fields=["status", "finished_at", "skip_reason"])


def _close_item_if_complete(item: Item) -> None:
    if item.overlap == 1:
        # The only slot was this submit's: no one else can be counting.
        Item.objects.filter(pk=item.pk, status=ItemStatus.READY).update(status=ItemStatus.DONE)
        return
    # Locking the item serialises concurrent submits on it, so the last one sees all the others
    # (under READ COMMITTED each would otherwise count only itself and none would close the item).
    locked = Item.objects.select_for_update().get(pk=item.pk)
    done = Assignment.objects.filter(item_id=item.pk, status=AssignmentStatus.SUBMITTED).count()
    if done >= locked.overlap and locked.status == ItemStatus.READY:
        Item.objects.filter(pk=item.pk).update(status=ItemStatus.DONE)


def safety_bin_for(*, chosen_is_safe: bool, rejected_is_safe: bool) -> str:
    """The paper's three safety bins; "chosen unsafe, other safe" is refused (Llama 2, §3.2.1)."""
    if not chosen_is_safe and rejected_is_safe:
        raise ApplicationError(
            "The chosen response is labelled unsafe while the other is safe. Such pairs are never used: "
            "choose the safe response, or check the safety labels."
        )
    if chosen_is_safe and not rejected_is_safe:
        return SafetyBin.CHOSEN_SAFE_OTHER_UNSAFE
    return SafetyBin.BOTH_SAFE if chosen_is_safe else SafetyBin.BOTH_UNSAFE


@dataclass(frozen=True)
class SafetyOutcome:
    """What a submit stores about safety on one kind of item, or why it is refused."""

    chosen_is_safe: bool | None = None
    rejected_is_safe: bool | None = None
    safety_bin: str = ""
    refusal: str | None = None


def _safety_outcomes(chosen: str, response_a_is_safe: bool | None, response_b_is_safe: bool | None):
    """(outcome on an item that asks for safety labels, outcome on one that does not) for the labels
    the annotator gave.

    Both are decided before the item is read, so the rules live here only; the submit picks the one
    for the item's guideline kind by `GuidelineKind.asks_safety_labels` (in SQL on PostgreSQL, in
    `comparison_submit` on SQLite).
    """
    labels = (response_a_is_safe, response_b_is_safe)
    on_helpfulness = SafetyOutcome(
        refusal=None if labels == (None, None) else "Safety labels belong to safety tasks only; this is a helpfulness task."
    )
    if None in labels:
        return SafetyOutcome(refusal="A safety task needs a safe/unsafe label for both responses."), on_helpfulness
    chosen_is_safe, rejected_is_safe = labels if chosen == "A" else labels[::-1]
    try:
        safety_bin = safety_bin_for(chosen_is_safe=chosen_is_safe, rejected_is_safe=rejected_is_safe)
    except ApplicationError as refused:
        return SafetyOutcome(refusal=refused.message), on_helpfulness
    return SafetyOutcome(chosen_is_safe, rejected_is_safe, safety_bin), on_helpfulness


def _outcome_for(guideline_kind: str, on_safety: SafetyOutcome, on_helpfulness: SafetyOutcome) -> SafetyOutcome:
    """The outcome that applies to an item of this guideline kind (the ORM path; the function does the same)."""
    return on_safety if GuidelineKind(guideline_kind).asks_safety_labels else on_helpfulness


# --- The submit of a comparison ---------------------------------------------------------------------
#
# On PostgreSQL it is one call of `annotation_submit_comparison`: the lock, the checks on the locked
# rows, the comparison, the assignment and the item written in one call of a function whose plans
# the server keeps, instead of five round trips each parsed and planned anew (about half the cost of
# an annotation cycle; `bench/annotate_load.py --hot-path functions,orm`). What the annotator's
# answer means (its choice, rating and safety labels, the safety bin) is decided in Python before
# the call, by the same code for both databases (`_valid_choice`, `_safety_outcomes`); the function
# only picks the outcome for the locked item's kind.
#
# SQLite (the demo) runs the ORM path in `comparison_submit` instead. The function is the
# authoritative copy of the rules on the locked rows (the assignment's state, the late submit of an
# expired claim, the shown order, the time cap, closing the item): `_lock_for_answer`,
# `_time_spent_ms` and `_close_item_if_complete` follow it (demonstrations use them on both
# databases), and the annotation tests run both paths.

SUBMIT_COMPARISON = DatabaseFunction(
    name="annotation_submit_comparison",
    create="""
CREATE FUNCTION annotation_submit_comparison(
    p_assignment bigint, p_annotator integer, p_chosen text, p_rating text, p_active_ms bigint, p_now timestamptz,
    -- What the caller decided for either kind of item (comparison_submit): the labels and bin of an
    -- item that asks for safety labels or the reason to refuse it, the reason to refuse an item that
    -- does not, and the guideline kinds whose items ask for them (GuidelineKind.asks_safety_labels).
    p_chosen_is_safe boolean, p_rejected_is_safe boolean, p_safety_bin text, p_safety_refusal text,
    p_helpfulness_refusal text, p_safety_kinds text[]
) RETURNS TABLE (
    outcome text, detail text,
    -- In the order of SUBMIT_ROW; null unless the outcome is 'stored' or 'existing'.
    c_id bigint, c_assignment_id bigint, c_item_id bigint, c_chosen_id bigint, c_rejected_id bigint, c_rating text,
    c_shown_order text, c_chosen_is_safe boolean, c_rejected_is_safe boolean, c_safety_bin text,
    c_time_spent_ms integer, c_created_at timestamptz,
    i_id bigint, i_sample_a_id bigint, i_sample_b_id bigint
) LANGUAGE plpgsql AS $$
-- outcome: 'stored', 'existing' (a double submit: the first comparison), 'not_found', 'wrong_task'
-- (detail: the item's task kind), 'skipped', 'taken' (expired and the slot went to someone else),
-- 'refused' (detail: the caller's message). Nothing is written unless the outcome is 'stored'.
-- Every exit returns the one row of the output columns set so far (the others are null).
DECLARE
    a record;
    shown_a bigint;
    shown_b bigint;
    safety_item boolean;
    refusal text;
    submitted integer;
BEGIN
    SELECT asg.id, asg.status, asg.flipped, asg.claimed_at, asg.guideline_id, asg.item_id,
           i.task_kind, i.guideline_kind, i.sample_a_id, i.sample_b_id, i.overlap
      INTO a
      FROM annotation_assignment asg JOIN annotation_item i ON i.id = asg.item_id
     WHERE asg.id = p_assignment AND asg.annotator_id = p_annotator
       FOR UPDATE OF asg;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    i_id := a.item_id; i_sample_a_id := a.sample_a_id; i_sample_b_id := a.sample_b_id;
    IF a.task_kind <> 'comparison' THEN
        outcome := 'wrong_task'; detail := a.task_kind;
    ELSIF a.status = 'skipped' THEN
        outcome := 'skipped';
    ELSIF a.status = 'submitted' THEN
        outcome := 'existing';
        SELECT c.id, c.assignment_id, c.item_id, c.chosen_id, c.rejected_id, c.rating, c.shown_order,
               c.chosen_is_safe, c.rejected_is_safe, c.safety_bin, c.time_spent_ms, c.created_at
          INTO c_id, c_assignment_id, c_item_id, c_chosen_id, c_rejected_id, c_rating, c_shown_order,
               c_chosen_is_safe, c_rejected_is_safe, c_safety_bin, c_time_spent_ms, c_created_at
          FROM annotation_comparison c WHERE c.assignment_id = a.id;
    END IF;
    IF outcome IS NOT NULL THEN
        RETURN NEXT;
        RETURN;
    END IF;

    safety_item := a.guideline_kind = ANY(p_safety_kinds);
    refusal := CASE WHEN safety_item THEN p_safety_refusal ELSE p_helpfulness_refusal END;
    IF refusal IS NOT NULL THEN
        outcome := 'refused'; detail := refusal;
        RETURN NEXT;
        RETURN;
    END IF;
    IF a.status = 'expired' THEN
        -- A late submit of an expired claim is accepted while the item still has a free slot.
        UPDATE annotation_item SET open_slots = open_slots - 1 WHERE id = a.item_id AND open_slots > 0;
        IF NOT FOUND THEN
            outcome := 'taken';
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;

    IF a.flipped THEN shown_a := a.sample_b_id; shown_b := a.sample_a_id;
    ELSE shown_a := a.sample_a_id; shown_b := a.sample_b_id; END IF;
    INSERT INTO annotation_comparison
           (assignment_id, item_id, annotator_id, guideline_id, guideline_kind, chosen_id, rejected_id, rating,
            shown_order, chosen_is_safe, rejected_is_safe, safety_bin, time_spent_ms, source, created_at)
    VALUES (a.id, a.item_id, p_annotator, a.guideline_id, a.guideline_kind,
            CASE WHEN p_chosen = 'A' THEN shown_a ELSE shown_b END,
            CASE WHEN p_chosen = 'A' THEN shown_b ELSE shown_a END,
            p_rating, CASE WHEN a.flipped THEN 'ba' ELSE 'ab' END,
            CASE WHEN safety_item THEN p_chosen_is_safe END,
            CASE WHEN safety_item THEN p_rejected_is_safe END,
            CASE WHEN safety_item THEN p_safety_bin ELSE '' END,
            -- the client's active time, never more than the wall time since the claim nor the column's
            -- range (TIME_SPENT_MAX_MS)
            LEAST(p_active_ms, GREATEST(0, trunc(extract(epoch FROM p_now - a.claimed_at) * 1000)), 2147483647)::integer,
            'annotation', p_now)
    RETURNING id, assignment_id, item_id, chosen_id, rejected_id, rating, shown_order, chosen_is_safe,
              rejected_is_safe, safety_bin, time_spent_ms, created_at
         INTO c_id, c_assignment_id, c_item_id, c_chosen_id, c_rejected_id, c_rating, c_shown_order,
              c_chosen_is_safe, c_rejected_is_safe, c_safety_bin, c_time_spent_ms, c_created_at;
    UPDATE annotation_assignment SET status = 'submitted', finished_at = p_now WHERE id = a.id;
    IF a.overlap = 1 THEN
        -- The only slot was this submit's: no one else can be counting.
        UPDATE annotation_item SET status = 'done' WHERE id = a.item_id AND status = 'ready';
    ELSE
        -- Locking the item serialises concurrent submits on it, so the last one sees all the others.
        PERFORM 1 FROM annotation_item WHERE id = a.item_id FOR UPDATE;
        SELECT count(*) INTO submitted FROM annotation_assignment WHERE item_id = a.item_id AND status = 'submitted';
        UPDATE annotation_item SET status = 'done' WHERE id = a.item_id AND status = 'ready' AND submitted >= overlap;
    END IF;
    outcome := 'stored';
    RETURN NEXT;
END
$$;
""",
)

# What `annotation_submit_comparison` returns after its outcome and detail: the comparison, and the
# item's sample ids, which tell which shown response was chosen without a query (its other fields
# load on first use, as deferred fields do).
SUBMIT_ROW = RowReads(
    ("c", Comparison, (
        "id", "assignment", "item", "chosen", "rejected", "rating", "shown_order", "chosen_is_safe",
        "rejected_is_safe", "safety_bin", "time_spent_ms", "created_at",
    )),
    ("i", Item, ("id", "sample_a", "sample_b")),
)  # fmt: skip


def _submit_comparison_in_one_call(*, assignment_id: int, annotator_id: int, chosen: str, rating: str,
                                   active_ms: int | None, now: dt.datetime, on_safety: SafetyOutcome,
                                   on_helpfulness: SafetyOutcome) -> tuple[Comparison, bool]:  # fmt: skip
    """`comparison_submit` on PostgreSQL, in one call of `annotation_submit_comparison`.
    Returns the comparison and whether it was stored earlier (a repeated submit)."""
    params = [
        assignment_id, annotator_id, chosen, rating, active_ms, now, on_safety.chosen_is_safe,
        on_safety.rejected_is_safe, on_safety.safety_bin, on_safety.refusal, on_helpfulness.refusal,
        [kind.value for kind in GuidelineKind if kind.asks_safety_labels],
    ]  # fmt: skip
    # One statement: in autocommit it is its own transaction, with no BEGIN and COMMIT round trips.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {SUBMIT_COMPARISON.name}({', '.join(['%s'] * len(params))})", params)
        outcome, detail, *row = cursor.fetchone()
    if outcome == "not_found":
        raise NotFound("No such assignment of yours.")
    if outcome == "wrong_task":
        raise _wrong_task(detail, TaskKind.COMPARISON)
    if outcome == "skipped":
        raise Conflict(YOU_SKIPPED)
    if outcome == "taken":
        raise Conflict(CLAIM_TAKEN)
    if outcome == "refused":
        raise ApplicationError(detail)
    if outcome == "existing" and row[0] is None:  # submitted, and its comparison deleted since
        raise Conflict(ANSWER_REMOVED)
    loaded = SUBMIT_ROW.instances(row)
    comparison = loaded["c"]
    comparison.item = loaded["i"]
    return comparison, outcome == "existing"


def _valid_choice(chosen: str, rating: str) -> str:
    chosen = (chosen or "").upper()
    if chosen not in ("A", "B"):
        raise ApplicationError('Choose the better response: "A" or "B".')
    if rating not in Rating.values:
        raise ApplicationError(f'Unknown rating "{rating}": use one of {", ".join(Rating.values)}.')
    return chosen


def _chosen_and_rejected(item: Item, shown_order: str, chosen: str) -> tuple[int, int]:
    """The sample ids of (chosen, rejected) for "A" or "B" chosen as the item was shown."""
    shown_a, shown_b = item.sample_ids_as_shown(shown_order)
    return (shown_a, shown_b) if chosen == "A" else (shown_b, shown_a)


def _answer_as_shown(comparison: Comparison) -> tuple:
    """(chosen "A"/"B", rating, Response A safe, Response B safe), as the annotator gave it."""
    return (comparison.chosen_as_shown, comparison.rating, *comparison.labels_as_shown())


def _refuse_a_different_answer(existing: Comparison, answer: tuple) -> Comparison:
    """A repeated submit of the same answer returns the stored comparison; a different one is refused.

    The item was already answered (from a second tab, or a page shown again by the Back button), so
    the new answer must not look saved: a 409 says what was kept, and the annotator can amend it.
    Decided here, from the row the submit returned, so the hot path pays no extra query.
    """
    stored = _answer_as_shown(existing)
    if stored == answer:
        return existing
    chosen, rating, a_safe, b_safe = stored
    raise Conflict(
        f"You already submitted this item: Response {chosen}, {Rating(rating).label.lower()}. That first answer "
        f"was kept and this one was not saved; to change it, amend comparison {existing.pk}.",
        extra={"stored": {
            "comparison": existing.pk, "chosen": chosen, "rating": rating,
            "response_a_is_safe": a_safe, "response_b_is_safe": b_safe,
        }},
    )  # fmt: skip


def comparison_submit(
    *,
    assignment: Assignment,
    annotator,
    chosen: str,
    rating: str,
    response_a_is_safe: bool | None = None,
    response_b_is_safe: bool | None = None,
    active_ms: int | None = None,
) -> Comparison:
    """Store the annotator's preference on their assignment.

    A repeated submit of the same answer returns the first comparison; a different answer is refused
    (409, with the stored answer): `comparison_amend` changes a stored answer deliberately.

    `chosen` is the response as shown ("A" or "B"); the shown order of the assignment maps it back
    to the item's samples and is stored with the comparison. Safety tasks need a safe/unsafe label
    for each shown response.
    """
    chosen = _valid_choice(chosen, rating)
    _refuse_negative_time(active_ms)
    on_safety, on_helpfulness = _safety_outcomes(chosen, response_a_is_safe, response_b_is_safe)
    now = timezone.now()
    answer = (chosen, rating, response_a_is_safe, response_b_is_safe)
    if uses_database_functions():
        comparison, existed = _submit_comparison_in_one_call(
            assignment_id=assignment.pk, annotator_id=annotator.pk, chosen=chosen, rating=rating,
            active_ms=active_ms, now=now, on_safety=on_safety, on_helpfulness=on_helpfulness,
        )  # fmt: skip
        return _refuse_a_different_answer(comparison, answer) if existed else comparison
    with transaction.atomic():
        locked, existing = _lock_for_answer(assignment=assignment, annotator=annotator, task_kind=TaskKind.COMPARISON)
        if existing is not None:
            return _refuse_a_different_answer(existing, answer)
        item = locked.item
        safety = _outcome_for(item.guideline_kind, on_safety, on_helpfulness)
        if safety.refusal:
            raise ApplicationError(safety.refusal)
        chosen_id, rejected_id = _chosen_and_rejected(item, locked.shown_order, chosen)
        comparison = Comparison.objects.create(
            assignment=locked,
            item=item,
            annotator=annotator,
            guideline_id=locked.guideline_id,  # the id is enough: loading the guideline costs a query
            guideline_kind=item.guideline_kind,
            chosen_id=chosen_id,
            rejected_id=rejected_id,
            rating=rating,
            shown_order=locked.shown_order,
            chosen_is_safe=safety.chosen_is_safe,
            rejected_is_safe=safety.rejected_is_safe,
            safety_bin=safety.safety_bin,
            time_spent_ms=_time_spent_ms(locked, active_ms, now),
        )
        _finish(locked, AssignmentStatus.SUBMITTED, now)
        _close_item_if_complete(item)
    return comparison


def comparison_amend(
    *,
    comparison_id: int,
    annotator,
    chosen: str,
    rating: str,
    response_a_is_safe: bool | None = None,
    response_b_is_safe: bool | None = None,
) -> Comparison:
    """Change the annotator's own comparison while no closed batch holds it; the change is recorded.

    The same rules as a submit apply to the new answer. The comparison's row lock orders the amend
    against a batch close: the close's UPDATE waits for it (and exports the new answer), or the
    amend sees the batch and is refused. Giving the stored answer again changes and records nothing.
    """
    chosen = _valid_choice(chosen, rating)
    on_safety, on_helpfulness = _safety_outcomes(chosen, response_a_is_safe, response_b_is_safe)
    with transaction.atomic():
        found = Comparison.objects.select_for_update(of=("self",)).select_related("item").filter(
            pk=comparison_id, annotator=annotator
        )[:1]
        if not found:
            raise NotFound("No such comparison of yours.")
        comparison = found[0]
        if not batch_selectors.batch_is_open(batch_id=comparison.batch_id):
            raise Conflict(
                f"This comparison is in batch {comparison.batch.week}, which is closed and exported as it is; "
                "it can no longer be changed."
            )
        safety = _outcome_for(comparison.guideline_kind, on_safety, on_helpfulness)
        if safety.refusal:
            raise ApplicationError(safety.refusal)
        if _answer_as_shown(comparison) == (chosen, rating, response_a_is_safe, response_b_is_safe):
            return comparison
        old = {name: getattr(comparison, name) for name in AMENDED_FIELDS}
        comparison.chosen_id, comparison.rejected_id = _chosen_and_rejected(comparison.item, comparison.shown_order, chosen)
        comparison.rating = rating
        comparison.chosen_is_safe, comparison.rejected_is_safe = safety.chosen_is_safe, safety.rejected_is_safe
        comparison.safety_bin = safety.safety_bin
        comparison.save(update_fields=["rejected", *(name.removesuffix("_id") for name in AMENDED_FIELDS)])
        ComparisonAmendment.objects.create(
            comparison=comparison,
            annotator=annotator,
            amended_at=timezone.now(),
            **{f"old_{name}": value for name, value in old.items()},
            **{f"new_{name}": getattr(comparison, name) for name in AMENDED_FIELDS},
        )
    return comparison


# What an amendment changes and records (old and new), by attribute name.
AMENDED_FIELDS = ("chosen_id", "rating", "chosen_is_safe", "rejected_is_safe", "safety_bin")


def demonstration_submit(*, assignment: Assignment, annotator, text: str, active_ms: int | None = None) -> Demonstration:
    """Store the annotator's ideal response to a demonstration item.

    A repeated submit of the same text returns the first; a different text is refused (409, with the
    stored response)."""
    text = (text or "").strip()
    if not text:
        raise ApplicationError("Write the ideal response before submitting.")
    if len(text) > settings.DIALOGUE_MAX_TURN_CHARS:
        raise ApplicationError(
            f"The response is longer than {settings.DIALOGUE_MAX_TURN_CHARS} characters (DIALOGUE_MAX_TURN_CHARS): shorten it."
        )
    _refuse_negative_time(active_ms)
    now = timezone.now()
    with transaction.atomic():
        locked, existing = _lock_for_answer(assignment=assignment, annotator=annotator, task_kind=TaskKind.DEMONSTRATION)
        if existing is not None and existing.text != text:
            raise Conflict(
                "You already submitted a response to this item; that first response was kept and this one was not saved.",
                extra={"stored": {"demonstration": existing.pk, "text": existing.text}},
            )
        if existing is not None:
            return existing
        item = locked.item
        demonstration = Demonstration.objects.create(
            assignment=locked,
            item=item,
            annotator=annotator,
            guideline_id=locked.guideline_id,
            guideline_kind=item.guideline_kind,
            text=text,
            time_spent_ms=_time_spent_ms(locked, active_ms, now),
        )
        _finish(locked, AssignmentStatus.SUBMITTED, now)
        _close_item_if_complete(item)
    return demonstration


def assignment_skip(*, assignment: Assignment, annotator, reason: str) -> Assignment:
    """Give the item back for others, with the reason; the annotator will not be given it again."""
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("Say why you skip this item (for example: unclear prompt, offensive, not my language).")
    now = timezone.now()
    with transaction.atomic():
        locked = _lock_own_assignment(assignment=assignment, annotator=annotator)
        if locked.status == AssignmentStatus.SKIPPED:
            return locked
        if locked.status == AssignmentStatus.SUBMITTED:
            raise Conflict("This item was already submitted; it cannot be skipped.")
        if locked.status == AssignmentStatus.CLAIMED:
            # An expired claim already gave its slot back when it expired.
            Item.objects.filter(pk=locked.item_id).update(open_slots=F("open_slots") + 1)
        locked.skip_reason = reason[:500]
        _finish(locked, AssignmentStatus.SKIPPED, now)
    return locked

