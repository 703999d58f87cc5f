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
from annotation_site.db_functions import DatabaseFunction, RowReads, uses_database_functions


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


# --- The claim ---------------------------------------------------------------------------------------
#
# On PostgreSQL a claim is one call of `annotation_claim_next`: the live-claim check, the SKIP LOCKED
# pick, the slot taken, the assignment inserted and what the annotator is shown read back, in one
# statement whose plan the server keeps for the session. Each of those was a round trip of its own
# (plus BEGIN and COMMIT), and planning the statements anew on every claim cost more than running
# them: on the ORM the whole rated-item cycle costs about three times the CPU
# (`bench/annotate_load.py --hot-path functions,orm`, docs/performance.md).
#
# SQLite (the demo) has no such functions: `_claim_step_by_step` makes the same claim with the ORM.
# The function is the authoritative copy of the rules they share (which item, the slot, the
# assignment's fields); the step-by-step path follows it, and the annotation tests run both
# (PostgreSQL, and SQLite or ANNOTATION_DB_FUNCTIONS=false).

CLAIM_NEXT = DatabaseFunction(
    name="annotation_claim_next",
    create="""
CREATE FUNCTION annotation_claim_next(
    p_annotator integer, p_kinds text[], p_task_kind text, p_now timestamptz, p_expires timestamptz, p_flipped boolean
) RETURNS TABLE (
    a_id bigint, a_item_id bigint, a_annotator_id integer, a_status text, a_flipped boolean, a_claimed_at timestamptz,
    a_expires_at timestamptz, a_finished_at timestamptz, a_skip_reason text, a_guideline_id bigint,
    i_id bigint, i_task_kind text, i_dialogue_id bigint, i_guideline_kind text, i_sample_a_id bigint,
    i_sample_b_id bigint, i_status text, i_overlap integer, i_priority integer,
    d_id bigint, d_turns jsonb, d_guideline_kind text,
    sa_id bigint, sa_dialogue_id bigint, sa_text text, sa_text_html text,
    sb_id bigint, sb_dialogue_id bigint, sb_text text, sb_text_html text,
    g_id bigint, g_kind text, g_version integer, g_title text, g_text text, g_overlap integer, g_is_active boolean,
    g_created_at timestamptz
) LANGUAGE plpgsql AS $$
BEGIN
    -- The annotator's live claim is given again (a reload shows the same item); otherwise the most
    -- urgent ready item with a free slot they never had is locked (SKIP LOCKED: concurrent claims
    -- pass over each other's rows), its slot taken and the assignment inserted, in one statement.
    RETURN QUERY
    WITH live AS (
        SELECT a.* FROM annotation_assignment a JOIN annotation_item li ON li.id = a.item_id
         WHERE a.annotator_id = p_annotator AND a.status = 'claimed' AND a.expires_at > p_now
           AND li.guideline_kind = ANY(p_kinds) AND (p_task_kind IS NULL OR li.task_kind = p_task_kind)
         ORDER BY a.id LIMIT 1
    ),
    picked AS (
        SELECT i.id, i.guideline_kind FROM annotation_item i
         WHERE NOT EXISTS (SELECT 1 FROM live)
           AND i.status = 'ready' AND i.open_slots > 0 AND i.guideline_kind = ANY(p_kinds)
           AND (p_task_kind IS NULL OR i.task_kind = p_task_kind)
           AND NOT EXISTS (SELECT 1 FROM annotation_assignment a WHERE a.item_id = i.id AND a.annotator_id = p_annotator)
         ORDER BY i.priority DESC, i.id
         LIMIT 1
         FOR UPDATE OF i SKIP LOCKED
    ),
    taken AS (
        UPDATE annotation_item i SET open_slots = i.open_slots - 1 FROM picked WHERE i.id = picked.id
        RETURNING i.id, i.guideline_kind
    ),
    made AS (
        INSERT INTO annotation_assignment
               (item_id, annotator_id, status, flipped, claimed_at, expires_at, skip_reason, guideline_id)
        SELECT taken.id, p_annotator, 'claimed', p_flipped, p_now, p_expires, '',
               (SELECT g.id FROM annotation_guideline g
                 WHERE g.kind = taken.guideline_kind AND g.is_active ORDER BY g.version DESC LIMIT 1)
          FROM taken
        RETURNING *
    )
    -- In the order of CLAIM_ROW.
    SELECT a.id, a.item_id, a.annotator_id, a.status::text, a.flipped, a.claimed_at, a.expires_at, a.finished_at,
           a.skip_reason::text, a.guideline_id,
           i.id, i.task_kind::text, i.dialogue_id, i.guideline_kind::text, i.sample_a_id, i.sample_b_id,
           i.status::text, i.overlap::integer, i.priority::integer,
           d.id, d.turns, d.guideline_kind::text,
           sa.id, sa.dialogue_id, sa.text, sa.text_html, sb.id, sb.dialogue_id, sb.text, sb.text_html,
           g.id, g.kind::text, g.version::integer, g.title::text, g.text, g.overlap::integer, g.is_active, g.created_at
      FROM (SELECT * FROM made UNION ALL SELECT * FROM live) a
      JOIN annotation_item i ON i.id = a.item_id
      JOIN annotation_dialogue d ON d.id = i.dialogue_id
      LEFT JOIN annotation_sample sa ON sa.id = i.sample_a_id
      LEFT JOIN annotation_sample sb ON sb.id = i.sample_b_id
      LEFT JOIN annotation_guideline g ON g.id = a.guideline_id;
END
$$;
""",
)

# What `annotation_claim_next` returns, in order, per table alias.
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


def _claim_in_one_statement(*, annotator, guideline_kinds: list[str], task_kind: str | None, now: dt.datetime,
                            expires: dt.datetime, flipped: bool):  # fmt: skip
    """The annotator's live claim or a new one, with its item loaded, or None when nothing is free (PostgreSQL)."""
    params = [annotator.pk, list(guideline_kinds), task_kind, now, expires, flipped]
    # In autocommit the statement is its own transaction (no BEGIN/COMMIT round trips); inside a
    # caller's transaction a savepoint lets a unique-constraint race be retried.
    with transaction.atomic() if connection.in_atomic_block else nullcontext(), connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {CLAIM_NEXT.name}(%s, %s, %s, %s, %s, %s)", params)
        row = cursor.fetchone()
    return _claimed_assignment(row) if row else None


def _claim_step_by_step(*, annotator, guideline_kinds: list[str], task_kind: str | None, now: dt.datetime,
                        expires: dt.datetime, flipped: bool):  # fmt: skip
    """`annotation_claim_next` on the ORM, for SQLite (and ANNOTATION_DB_FUNCTIONS=false)."""
    live = selectors.assignment_live_for(annotator=annotator, guideline_kinds=guideline_kinds, task_kind=task_kind)
    if live is not None:
        return live
    current_guideline = selectors.guidelines_current_first(kind=OuterRef("guideline_kind")).values("id")[:1]
    with transaction.atomic():
        # SKIP LOCKED where the database has it; SQLite serialises writers instead.
        found = (
            selectors.claimable_items_for(annotator=annotator, guideline_kinds=guideline_kinds, task_kind=task_kind)
            .select_for_update(skip_locked=True, of=("self",))
            .annotate(current_guideline=Subquery(current_guideline))
            .values_list("id", "current_guideline")[:1]
        )
        if not found:
            return None
        item_id, guideline_id = found[0]
        Item.objects.filter(pk=item_id).update(open_slots=F("open_slots") - 1)
        assignment_id = Assignment.objects.create(
            item_id=item_id, annotator=annotator, flipped=flipped, guideline_id=guideline_id, claimed_at=now,
            expires_at=expires,
        ).pk  # fmt: skip
    return selectors.assignment_get_for(assignment_id=assignment_id, annotator=annotator)


def _claim_gold_now_and_then(*, annotator, guideline_kinds: list[str], task_kind: str | None, now: dt.datetime,
                             expires: dt.datetime, flipped: bool):
    """At the guideline's gold rate, a gold item instead of the next one (quality app), unless the
    annotator has a live claim (a reload shows the same item). The draw costs no query on the
    claims that do not serve gold, so the hot path pays only on the few that do."""
    from annotation_site.quality import services as quality

    if not quality.gold_draw(guideline_kinds=guideline_kinds):
        return None
    live = selectors.assignment_live_for(annotator=annotator, guideline_kinds=guideline_kinds, task_kind=task_kind)
    if live is not None:
        return live
    assignment_id = quality.gold_claim_next(
        annotator=annotator, guideline_kinds=guideline_kinds, task_kind=task_kind, now=now, expires=expires, flipped=flipped,
    )
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
    expires = now + dt.timedelta(seconds=settings.ASSIGNMENT_TTL_SECONDS)
    # The side shown as "Response A" is drawn here, for every path (gold items included).
    flipped = random.random() < 0.5
    gold = _claim_gold_now_and_then(annotator=annotator, guideline_kinds=kinds, task_kind=task_kind, now=now,
                                    expires=expires, flipped=flipped)  # fmt: skip
    if gold is not None:
        return gold
    claim = _claim_in_one_statement if uses_database_functions() else _claim_step_by_step
    for _attempt in range(3):
        try:
            claimed = claim(annotator=annotator, guideline_kinds=kinds, task_kind=task_kind, now=now, expires=expires,
                            flipped=flipped)  # fmt: skip
        except IntegrityError:
            # The same annotator claimed the same item from a second tab in between; try the next one.
            continue
        if claimed is not None:
            return claimed
        if not assignments_expire(now=now):
            return None
        # expired claims gave slots back: look again
    return None

