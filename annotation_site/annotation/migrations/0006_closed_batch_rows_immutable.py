"""PostgreSQL refuses to change or delete a comparison or demonstration of a closed batch.

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

DROP = "".join(f"DROP TRIGGER IF EXISTS {table}_closed_batch ON {table};\n" for table in TABLES) + (
    "DROP FUNCTION IF EXISTS annotation_refuse_closed_batch_change();\n"
)


class Migration(migrations.Migration):
    dependencies = [("annotation", "0005_sample_cleaned_chars"), ("batches", "0003_weekly_schedule")]

    operations = [migrations.RunPython(on_postgresql(CREATE), on_postgresql(DROP))]
