"""PostgreSQL refuses to change or delete a comparison or demonstration of a closed batch, and to
change the text of the samples and dialogues they point at (what the batch's files hold).

The models refuse it already (`BatchedRecord`, `BatchedQuerySet`); the trigger holds for what goes
around the ORM too: raw SQL, a psql session, a future PL/pgSQL function. Every batch is closed (a
batch exists only once its week is closed), so "in a closed batch" is `batch_id IS NOT NULL`.
Closing a batch sets `batch_id` on rows where it was NULL, which the trigger lets through; exports
only read these tables. TRUNCATE (test database flushes) fires no row trigger.
"""
from django.db import migrations

from annotation_site.db_functions import on_postgresql

TABLES = ("annotation_comparison", "annotation_demonstration")

CREATE = """
CREATE OR REPLACE FUNCTION annotation_refuse_closed_batch_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Concatenated, not RAISE's placeholders: Django passes migration SQL through psycopg2's
    -- parameter formatting, which would read them.
    RAISE EXCEPTION USING
        ERRCODE = 'restrict_violation',
        MESSAGE = TG_TABLE_NAME || ' row ' || OLD.id || ' belongs to closed batch ' || OLD.batch_id
                  || ': a closed batch never changes, so that every export of it writes the same files',
        HINT = 'Leave it as it is; to leave it out of training, filter it when you train.';
END
$$;
""" + "".join(
    f"""
CREATE TRIGGER {table}_closed_batch BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW WHEN (OLD.batch_id IS NOT NULL) EXECUTE FUNCTION annotation_refuse_closed_batch_change();
"""
    for table in TABLES
)

# The text a batch's files hold of the samples and dialogues its rows point at. (Deleting them is
# refused already by the comparisons' and items' foreign keys.)
CREATE_TEXT = """
CREATE OR REPLACE FUNCTION annotation_refuse_closed_batch_sample_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM annotation_comparison
                WHERE batch_id IS NOT NULL AND OLD.id IN (chosen_id, rejected_id)) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'restrict_violation',
            MESSAGE = 'annotation_sample row ' || OLD.id || ' is exported by a closed batch: a closed batch never changes';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER annotation_sample_closed_batch BEFORE UPDATE OF text, model_name, sampling_params ON annotation_sample
    FOR EACH ROW WHEN ((OLD.text, OLD.model_name, OLD.sampling_params) IS DISTINCT FROM (NEW.text, NEW.model_name, NEW.sampling_params))
    EXECUTE FUNCTION annotation_refuse_closed_batch_sample_change();

CREATE OR REPLACE FUNCTION annotation_refuse_closed_batch_dialogue_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM annotation_item i
                WHERE i.dialogue_id = OLD.id
                  AND (EXISTS (SELECT 1 FROM annotation_comparison c WHERE c.item_id = i.id AND c.batch_id IS NOT NULL)
                       OR EXISTS (SELECT 1 FROM annotation_demonstration d WHERE d.item_id = i.id AND d.batch_id IS NOT NULL))) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'restrict_violation',
            MESSAGE = 'annotation_dialogue row ' || OLD.id || ' is exported by a closed batch: a closed batch never changes';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER annotation_dialogue_closed_batch BEFORE UPDATE OF turns ON annotation_dialogue
    FOR EACH ROW WHEN (OLD.turns IS DISTINCT FROM NEW.turns)
    EXECUTE FUNCTION annotation_refuse_closed_batch_dialogue_change();
"""

DROP = (
    "".join(f"DROP TRIGGER IF EXISTS {table}_closed_batch ON {table};\n" for table in (*TABLES, "annotation_sample", "annotation_dialogue"))
    + "DROP FUNCTION IF EXISTS annotation_refuse_closed_batch_change();\n"
    + "DROP FUNCTION IF EXISTS annotation_refuse_closed_batch_sample_change();\n"
    + "DROP FUNCTION IF EXISTS annotation_refuse_closed_batch_dialogue_change();\n"
)


class Migration(migrations.Migration):
    dependencies = [("annotation", "0008_sample_cleaned_chars"), ("batches", "0003_weekly_schedule")]

    operations = [migrations.RunPython(on_postgresql(CREATE + CREATE_TEXT), on_postgresql(DROP))]
