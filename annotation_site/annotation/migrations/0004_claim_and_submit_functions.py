"""PostgreSQL functions for the two statements every rated item goes through: claim and submit.

History: the current text of both functions lives in `annotation.services.claims` and
`annotation.services.submissions`, installed by migration 0012; this is the first version.

Why functions: PostgreSQL keeps the plans of a PL/pgSQL function's statements for the session,
while psycopg2 sends every statement as new text to be parsed and planned again. Under load the
claim's planning alone cost more than running it, and the submit's five round trips (lock, insert,
two updates, commit) more than the work they did. The rules stay in Python
(`annotation.services`): the submit function is given the safety outcome for either guideline
kind and only picks the one that applies to the locked item. SQLite keeps the step-by-step ORM
path in `services`; nothing here runs there.
"""
from django.db import migrations

from annotation_site.db_functions import on_postgresql

CLAIM_NEXT = """
CREATE OR REPLACE FUNCTION annotation_claim_next(
    p_annotator integer, p_kinds text[], p_task_kind text, p_now timestamptz, p_expires timestamptz, p_flipped boolean
) RETURNS TABLE (
    a_id bigint, a_item_id bigint, a_annotator_id integer, a_status text, a_flipped boolean, a_claimed_at timestamptz,
    a_expires_at timestamptz, a_finished_at timestamptz, a_skip_reason text, a_guideline_id bigint,
    i_id bigint, i_task_kind text, i_dialogue_id bigint, i_guideline_kind text, i_sample_a_id bigint,
    i_sample_b_id bigint, i_status text, i_overlap integer, i_priority integer,
    d_id bigint, d_turns jsonb, d_guideline_kind text,
    sa_id bigint, sa_dialogue_id bigint, sa_text text, sb_id bigint, sb_dialogue_id bigint, sb_text text,
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
    -- In the order of services.CLAIM_ROW. The item's open_slots is left out: this statement's
    -- snapshot predates its own decrement.
    SELECT a.id, a.item_id, a.annotator_id, a.status::text, a.flipped, a.claimed_at, a.expires_at, a.finished_at,
           a.skip_reason::text, a.guideline_id,
           i.id, i.task_kind::text, i.dialogue_id, i.guideline_kind::text, i.sample_a_id, i.sample_b_id,
           i.status::text, i.overlap::integer, i.priority::integer,
           d.id, d.turns, d.guideline_kind::text,
           sa.id, sa.dialogue_id, sa.text, sb.id, sb.dialogue_id, sb.text,
           g.id, g.kind::text, g.version::integer, g.title::text, g.text, g.overlap::integer, g.is_active, g.created_at
      FROM (SELECT * FROM made UNION ALL SELECT * FROM live) a
      JOIN annotation_item i ON i.id = a.item_id
      JOIN annotation_dialogue d ON d.id = i.dialogue_id
      LEFT JOIN annotation_sample sa ON sa.id = i.sample_a_id
      LEFT JOIN annotation_sample sb ON sb.id = i.sample_b_id
      LEFT JOIN annotation_guideline g ON g.id = a.guideline_id;
END
$$;
"""

SUBMIT_COMPARISON = """
CREATE OR REPLACE FUNCTION annotation_submit_comparison(
    p_assignment bigint, p_annotator integer, p_chosen text, p_rating text, p_active_ms bigint, p_now timestamptz,
    -- What the caller decided for either kind of item (services.comparison_submit): the labels and
    -- bin of a safety item or the reason to refuse it, and the reason to refuse a helpfulness item.
    p_chosen_is_safe boolean, p_rejected_is_safe boolean, p_safety_bin text, p_safety_refusal text,
    p_helpfulness_refusal text
) RETURNS TABLE (
    outcome text, detail text,
    -- In the order of services.SUBMIT_ROW; null unless the outcome is 'stored' or 'existing'.
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

    safety_item := a.guideline_kind = 'safety';
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
            -- the client's active time, never more than the wall time since the claim (nor the column's range)
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
"""

DROP = """
DROP FUNCTION IF EXISTS annotation_claim_next(integer, text[], text, timestamptz, timestamptz, boolean);
DROP FUNCTION IF EXISTS annotation_submit_comparison(
    bigint, integer, text, text, bigint, timestamptz, boolean, boolean, text, text, text);
"""


class Migration(migrations.Migration):
    dependencies = [("annotation", "0003_item_claim_order_idx")]

    operations = [
        migrations.RunPython(on_postgresql(CLAIM_NEXT + SUBMIT_COMPARISON), on_postgresql(DROP)),
    ]
