"""Writes of the annotation domain: queueing prompts, claiming, submitting, skipping, guidelines.

Every function takes keyword-only arguments and raises `ApplicationError` (or a subclass) with a
message that says what was wrong; views, serializers and commands validate, call one of these and
return.
"""
from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Max, OuterRef, Subquery
from django.utils import timezone

from annotation_site.annotation import selectors
from annotation_site.annotation.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    ComparisonAmendment,
    Demonstration,
    Dialogue,
    DialogueSource,
    Guideline,
    GuidelineKind,
    Item,
    ItemStatus,
    Rating,
    SafetyBin,
    Sample,
    TaskKind,
)
from annotation_site.annotation.signals import items_need_samples
from annotation_site.batches import selectors as batch_selectors
from annotation_site.db_functions import RowReads
from annotation_site.errors import ApplicationError, Conflict, NotFound
from annotation_site.text_rules import require_storable

# Annotator-written prompts and continued dialogues are generated and served before pool prompts.
ANNOTATOR_PRIORITY = 10
BULK_CHUNK = 2_000


# --- Dialogues and the "needs samples" queue (docs/architecture.md, contract §1) -----------------------------------------


def validate_turns(turns) -> list[dict]:
    """A dialogue context: alternating user/assistant turns with text, starting and ending with a user turn."""
    if not isinstance(turns, list) or not turns:
        raise ApplicationError("A dialogue must be a non-empty list of turns.")
    if len(turns) > settings.DIALOGUE_MAX_TURNS:
        raise ApplicationError(
            f"The dialogue has {len(turns)} turns, more than the {settings.DIALOGUE_MAX_TURNS} allowed "
            "(DIALOGUE_MAX_TURNS): shorten it."
        )
    clean = []
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict) or set(turn) - {"role", "content"} or not {"role", "content"} <= set(turn):
            raise ApplicationError(f'Turn {index + 1} must be an object with exactly "role" and "content".')
        role, content = turn["role"], turn["content"]
        expected = "user" if index % 2 == 0 else "assistant"
        if role != expected:
            raise ApplicationError(
                f'Turn {index + 1} has role "{role}" but "{expected}" was expected: turns alternate user/assistant, starting with user.'
            )
        if not isinstance(content, str) or not content.strip():
            raise ApplicationError(f"Turn {index + 1} has no text.")
        if len(content) > settings.DIALOGUE_MAX_TURN_CHARS:
            raise ApplicationError(
                f"Turn {index + 1} is longer than {settings.DIALOGUE_MAX_TURN_CHARS} characters (DIALOGUE_MAX_TURN_CHARS): shorten it."
            )
        require_storable(content, where=f"turn {index + 1}")
        clean.append({"role": role, "content": content})
    total = sum(len(turn["content"]) for turn in clean)
    if total > settings.DIALOGUE_MAX_CHARS:
        raise ApplicationError(
            f"The dialogue has {total} characters, more than the {settings.DIALOGUE_MAX_CHARS} allowed "
            "(DIALOGUE_MAX_CHARS): shorten it."
        )
    if clean[-1]["role"] != "user":
        raise ApplicationError("A dialogue to answer must end with a user turn.")
    return clean


def _validate_kind(guideline_kind: str) -> None:
    if guideline_kind not in GuidelineKind.values:
        raise ApplicationError(
            f'Unknown guideline kind "{guideline_kind}": use one of {", ".join(GuidelineKind.values)}.'
        )


def _overlap_for(guideline_kind: str) -> int:
    guideline = selectors.guideline_current(kind=guideline_kind)
    return guideline.overlap if guideline else 1


def _announce_needs_samples(items: list[Item]) -> None:
    item_ids = [item.pk for item in items if item.status == ItemStatus.NEEDS_SAMPLES]
    if item_ids:
        transaction.on_commit(lambda: items_need_samples.send(sender=Item, item_ids=item_ids))


@dataclass(frozen=True)
class PromptSpec:
    """One prompt to queue: its dialogue turns and guideline kind (as validated by the caller)."""

    turns: list[dict]
    guideline_kind: str


def prompts_queue(
    *,
    prompts: list[PromptSpec],
    source: str = DialogueSource.POOL,
    source_name: str = "",
    task_kind: str = TaskKind.COMPARISON,
    author=None,
    priority: int = 0,
    continues: Comparison | None = None,
) -> list[Item]:
    """Queue prompts as items, in bulk and in one transaction.

    Comparison items wait in NEEDS_SAMPLES until the generator attaches two samples (the signal
    `items_need_samples` tells it); demonstration items need no samples and are READY at once.
    """
    if task_kind not in TaskKind.values:
        raise ApplicationError(f'Unknown task kind "{task_kind}": use one of {", ".join(TaskKind.values)}.')
    for prompt in prompts:
        _validate_kind(prompt.guideline_kind)
        validate_turns(prompt.turns)
    overlaps = {kind: _overlap_for(kind) for kind in {p.guideline_kind for p in prompts}}
    status = ItemStatus.READY if task_kind == TaskKind.DEMONSTRATION else ItemStatus.NEEDS_SAMPLES
    items: list[Item] = []
    with transaction.atomic():
        for start in range(0, len(prompts), BULK_CHUNK):
            chunk = prompts[start : start + BULK_CHUNK]
            dialogues = Dialogue.objects.bulk_create(
                [
                    Dialogue(
                        turns=p.turns,
                        guideline_kind=p.guideline_kind,
                        source=source,
                        source_name=source_name,
                        author=author,
                        continues=continues,
                    )
                    for p in chunk
                ]
            )
            items += Item.objects.bulk_create(
                [
                    Item(
                        task_kind=task_kind,
                        dialogue=dialogue,
                        guideline_kind=dialogue.guideline_kind,
                        status=status,
                        overlap=overlaps[dialogue.guideline_kind],
                        open_slots=overlaps[dialogue.guideline_kind],
                        priority=priority,
                    )
                    for dialogue in dialogues
                ]
            )
        _announce_needs_samples(items)
    return items


def item_attach_samples(*, item: Item, sample_a: Sample, sample_b: Sample) -> Item:
    """Put two stored samples on a NEEDS_SAMPLES item and open it to annotators (docs/architecture.md, contract §1)."""
    if sample_a.pk is None or sample_b.pk is None:
        raise ApplicationError("Both samples must be saved before they are attached to an item.")
    if sample_a.pk == sample_b.pk:
        raise ApplicationError("An item compares two different samples; the same sample was given twice.")
    with transaction.atomic():
        locked = Item.objects.select_for_update().get(pk=item.pk)
        if locked.status != ItemStatus.NEEDS_SAMPLES:
            raise ApplicationError(f"Item {locked.pk} is {locked.status}, not waiting for samples.")
        if locked.task_kind != TaskKind.COMPARISON:
            raise ApplicationError(f"Item {locked.pk} is a {locked.task_kind} task and takes no samples.")
        for sample in (sample_a, sample_b):
            if sample.dialogue_id != locked.dialogue_id:
                raise ApplicationError(
                    f"Sample {sample.pk} answers dialogue {sample.dialogue_id}, not item {locked.pk}'s dialogue {locked.dialogue_id}."
                )
        locked.sample_a, locked.sample_b = sample_a, sample_b
        locked.status = ItemStatus.READY
        locked.open_slots = locked.overlap
        locked.save(update_fields=["sample_a", "sample_b", "status", "open_slots"])
    return locked


def prompt_write(*, annotator, text: str, guideline_kind: str, task_kind: str = TaskKind.COMPARISON) -> Item:
    """An annotator writes a brand-new prompt; it is queued ahead of the pool."""
    text = (text or "").strip()
    if not text:
        raise ApplicationError("Write a prompt before sending it.")
    (item,) = prompts_queue(
        prompts=[PromptSpec(turns=[{"role": "user", "content": text}], guideline_kind=guideline_kind)],
        source=DialogueSource.ANNOTATOR,
        task_kind=task_kind,
        author=annotator,
        priority=ANNOTATOR_PRIORITY,
    )
    return item


def dialogue_continue(*, comparison: Comparison, annotator, message: str) -> Item:
    """Continue a rated dialogue: the chosen response becomes the assistant turn, then the new user message."""
    if comparison.annotator_id != annotator.pk:
        raise NotFound("No such comparison of yours.")
    message = (message or "").strip()
    if not message:
        raise ApplicationError("Write the next user message to continue the dialogue.")
    item = comparison.item
    turns = list(item.dialogue.turns) + [
        {"role": "assistant", "content": comparison.chosen.text},
        {"role": "user", "content": message},
    ]
    (queued,) = prompts_queue(
        prompts=[PromptSpec(turns=turns, guideline_kind=item.guideline_kind)],
        source=DialogueSource.CONTINUATION,
        author=annotator,
        priority=ANNOTATOR_PRIORITY,
        continues=comparison,
    )
    return queued


# --- Claiming ---------------------------------------------------------------------------------------


def assignments_expire(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """Give the slots of claims past their TTL back to their items; returns how many expired.

    Rows are taken with SKIP LOCKED so concurrent callers split the work instead of waiting.
    """
    now = now or timezone.now()
    with transaction.atomic(savepoint=False):
        expired = list(
            Assignment.objects.select_for_update(skip_locked=True)
            .filter(status=AssignmentStatus.CLAIMED, expires_at__lte=now)
            .order_by("id")
            .values_list("id", "item_id")[:limit]
        )
        if not expired:
            return 0
        Assignment.objects.filter(id__in=[pk for pk, _ in expired]).update(
            status=AssignmentStatus.EXPIRED, finished_at=now
        )
        for item_id, count in sorted(Counter(item_id for _, item_id in expired).items()):
            Item.objects.filter(pk=item_id).update(open_slots=F("open_slots") + count)
    return len(expired)


# Expired claims are swept when a claim finds nothing, and otherwise at most this often per
# process, so a busy queue does not pay for a sweep on every claim.
EXPIRY_SWEEP_EVERY_S = 5.0
_last_sweep = {"at": 0.0}


def _sweep_expired_now_and_then(now: dt.datetime) -> None:
    moment = time.monotonic()
    if moment - _last_sweep["at"] >= EXPIRY_SWEEP_EVERY_S:
        _last_sweep["at"] = moment
        assignments_expire(now=now)


def _lock_next_claimable_item(*, annotator, guideline_kinds: list[str], task_kind: str | None):
    """Lock the most urgent ready item with a free slot this annotator never had; (item id, guideline id) or None.

    The guideline version current for the item's kind comes back in the same query. SKIP LOCKED
    lets concurrent claims pass over each other's rows instead of queueing on them.
    """
    current_guideline = (
        Guideline.objects.filter(kind=OuterRef("guideline_kind"), is_active=True).order_by("-version").values("id")[:1]
    )
    found = (
        selectors.claimable_items_for(annotator=annotator, guideline_kinds=guideline_kinds, task_kind=task_kind)
        .select_for_update(skip_locked=True, of=("self",))
        .annotate(current_guideline=Subquery(current_guideline))
        .values_list("id", "current_guideline")[:1]
    )
    return found[0] if found else None


# PostgreSQL claims in one call of `annotation_claim_next` (migration 0004, as changed by 0006): the live-claim check,
# the SKIP LOCKED pick, the slot taken, the assignment inserted and what the annotator is shown read
# back, in one statement whose plan the server keeps for the session. Each of those was a round trip
# of its own (plus BEGIN and COMMIT), and planning the statement anew on every claim cost more than
# running it. What the function returns, in order, per table alias:
CLAIM_ROW = RowReads(
    ("a", Assignment, (
        "id", "item", "annotator", "status", "flipped", "claimed_at", "expires_at", "finished_at", "skip_reason",
        "guideline",
    )),
    # The item's open_slots is left out (loaded if used): the claim's snapshot predates its own decrement.
    ("i", Item, ("id", "task_kind", "dialogue", "guideline_kind", "sample_a", "sample_b", "status", "overlap", "priority")),
    ("d", Dialogue, ("id", "turns", "guideline_kind")),
    ("sa", Sample, ("id", "dialogue", "text", "text_html")),
    ("sb", Sample, ("id", "dialogue", "text", "text_html")),
    ("g", Guideline, ("id", "kind", "version", "title", "text", "overlap", "is_active", "created_at")),
)  # fmt: skip


def _claimed_assignment(row) -> Assignment:
    loaded = CLAIM_ROW.instances(row)
    assignment, item = loaded["a"], loaded["i"]
    item.dialogue, item.sample_a, item.sample_b = loaded["d"], loaded["sa"], loaded["sb"]
    assignment.item, assignment.guideline = item, loaded["g"]
    return assignment


def _claim_in_one_statement(*, annotator_id: int, guideline_kinds: list[str], task_kind: str | None, now: dt.datetime):
    """The annotator's live claim or a new one, with its item loaded, or None when nothing is free (PostgreSQL)."""
    expires = now + dt.timedelta(seconds=settings.ASSIGNMENT_TTL_SECONDS)
    params = [annotator_id, list(guideline_kinds), task_kind, now, expires, random.random() < 0.5]
    # In autocommit the statement is its own transaction (no BEGIN/COMMIT round trips); inside a
    # caller's transaction a savepoint lets a unique-constraint race be retried.
    with transaction.atomic() if connection.in_atomic_block else nullcontext(), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM annotation_claim_next(%s, %s, %s, %s, %s, %s)", params)
        row = cursor.fetchone()
    return _claimed_assignment(row) if row else None


def _claim_step_by_step(*, annotator, guideline_kinds: list[str], task_kind: str | None, now: dt.datetime):
    """The same claim as `_claim_in_one_statement` for databases without data-modifying CTEs (SQLite)."""
    live = selectors.assignment_live_for(annotator=annotator, guideline_kinds=guideline_kinds, task_kind=task_kind)
    if live is not None:
        return live
    with transaction.atomic():
        found = _lock_next_claimable_item(annotator=annotator, guideline_kinds=guideline_kinds, task_kind=task_kind)
        if found is None:
            return None
        item_id, guideline_id = found
        Item.objects.filter(pk=item_id).update(open_slots=F("open_slots") - 1)
        assignment_id = Assignment.objects.create(
            item_id=item_id,
            annotator=annotator,
            flipped=random.random() < 0.5,
            guideline_id=guideline_id,
            claimed_at=now,
            expires_at=now + dt.timedelta(seconds=settings.ASSIGNMENT_TTL_SECONDS),
        ).pk
    return selectors.assignment_get_for(assignment_id=assignment_id, annotator=annotator)


def _claim_gold_now_and_then(*, annotator, guideline_kinds: list[str], task_kind: str | None, now: dt.datetime):
    """At the guideline's gold rate, a gold item instead of the next one (quality app), unless the
    annotator has a live claim (a reload shows the same item). The draw costs no query on the
    claims that do not serve gold, so the hot path pays only on the few that do."""
    from annotation_site.quality import services as quality

    if not quality.gold_draw(guideline_kinds=guideline_kinds):
        return None
    live = selectors.assignment_live_for(annotator=annotator, guideline_kinds=guideline_kinds, task_kind=task_kind)
    if live is not None:
        return live
    assignment_id = quality.gold_claim_next(annotator=annotator, guideline_kinds=guideline_kinds, task_kind=task_kind, now=now)
    return None if assignment_id is None else selectors.assignment_get_for(assignment_id=assignment_id, annotator=annotator)


def assignment_claim_next(*, annotator, guideline_kind: str | None = None, task_kind: str | None = None) -> Assignment | None:
    """Give the annotator their next item, or None when nothing is ready for them.

    A live claim is returned again (a reload shows the same item). Otherwise the most urgent ready
    item with a free slot that this annotator never had is locked with
    SELECT ... FOR UPDATE SKIP LOCKED (PostgreSQL; SQLite serialises writers instead), its slot
    taken under the lock, and the side shown as "Response A" drawn at random.
    """
    if guideline_kind:
        _validate_kind(guideline_kind)
    kinds = selectors.annotator_guideline_kinds(annotator=annotator, guideline_kind=guideline_kind)
    if not kinds:
        return None
    now = timezone.now()
    _sweep_expired_now_and_then(now)
    gold = _claim_gold_now_and_then(annotator=annotator, guideline_kinds=kinds, task_kind=task_kind, now=now)
    if gold is not None:
        return gold
    in_one_statement = connection.vendor == "postgresql" and settings.ANNOTATION_DB_FUNCTIONS
    for _attempt in range(3):
        try:
            if in_one_statement:
                claimed = _claim_in_one_statement(annotator_id=annotator.pk, guideline_kinds=kinds, task_kind=task_kind, now=now)
            else:
                claimed = _claim_step_by_step(annotator=annotator, guideline_kinds=kinds, task_kind=task_kind, now=now)
        except IntegrityError:
            # The same annotator claimed the same item from a second tab in between; try the next one.
            continue
        if claimed is not None:
            return claimed
        if not assignments_expire(now=now):
            return None
        # expired claims gave slots back: look again
    return None


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
    """The client's active time on the item, never more than the wall time since the claim."""
    wall_ms = max(0, int((now - locked.claimed_at).total_seconds() * 1000))
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
    """(outcome on a safety item, outcome on a helpfulness item) for the labels the annotator gave.

    Both are decided before the item is read, so the rules live here only; the submit picks the one
    for the item's guideline kind (in SQL on PostgreSQL, below on SQLite).
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


# What `annotation_submit_comparison` (migration 0004) returns after its outcome and detail: the
# comparison, and the item's sample ids, which tell which shown response was chosen without a query
# (its other fields load on first use, as deferred fields do).
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
    """`comparison_submit` on PostgreSQL: the lock, the checks on the locked rows, the comparison, the
    assignment and the item written in one call of a function whose plans the server keeps, instead
    of five round trips each parsed and planned anew (about half the cost of an annotation cycle).
    Returns the comparison and whether it was stored earlier (a repeated submit)."""
    params = [
        assignment_id, annotator_id, chosen, rating, active_ms, now, on_safety.chosen_is_safe,
        on_safety.rejected_is_safe, on_safety.safety_bin, on_safety.refusal, on_helpfulness.refusal,
    ]  # fmt: skip
    # One statement: in autocommit it is its own transaction, with no BEGIN and COMMIT round trips.
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM annotation_submit_comparison(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", params)
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
    if connection.vendor == "postgresql" and settings.ANNOTATION_DB_FUNCTIONS:
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
        safety = on_safety if item.guideline_kind == GuidelineKind.SAFETY else on_helpfulness
        if safety.refusal:
            raise ApplicationError(safety.refusal)
        shown_a, shown_b = (item.sample_b_id, item.sample_a_id) if locked.flipped else (item.sample_a_id, item.sample_b_id)
        chosen_id, rejected_id = (shown_a, shown_b) if chosen == "A" else (shown_b, shown_a)
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
        safety = on_safety if comparison.guideline_kind == GuidelineKind.SAFETY else on_helpfulness
        if safety.refusal:
            raise ApplicationError(safety.refusal)
        if _answer_as_shown(comparison) == (chosen, rating, response_a_is_safe, response_b_is_safe):
            return comparison
        item = comparison.item
        shown_a, shown_b = (item.sample_b_id, item.sample_a_id) if comparison.shown_order == "ba" else (item.sample_a_id, item.sample_b_id)
        old = {name: getattr(comparison, name) for name in AMENDED_FIELDS}
        comparison.chosen_id, comparison.rejected_id = (shown_a, shown_b) if chosen == "A" else (shown_b, shown_a)
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


# --- Guidelines -----------------------------------------------------------------------------------


def guideline_publish(*, kind: str, title: str, text: str, overlap: int = 1) -> Guideline:
    """Publish a new version of a guideline; earlier versions stay, so old comparisons keep theirs."""
    _validate_kind(kind)
    if not title.strip() or not text.strip():
        raise ApplicationError("A guideline needs a title and a text.")
    if overlap < 1:
        raise ApplicationError("Overlap must be at least 1 annotator per item.")
    require_storable(title, where="the title")
    require_storable(text, where="the guideline text")
    with transaction.atomic():
        latest = Guideline.objects.select_for_update().filter(kind=kind).aggregate(v=Max("version"))["v"] or 0
        return Guideline.objects.create(kind=kind, version=latest + 1, title=title.strip(), text=text, overlap=overlap)
