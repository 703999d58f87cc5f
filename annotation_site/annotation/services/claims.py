"""Claims: the annotator's next item taken from the queue, and claims that expired given back."""
from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter
from contextlib import nullcontext

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from annotation_site.annotation import selectors
from annotation_site.annotation.models import Assignment, AssignmentStatus, Dialogue, Guideline, Item, Sample
from annotation_site.annotation.services.guidelines import validate_kind
from annotation_site.db_functions import RowReads


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
        validate_kind(guideline_kind)
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

