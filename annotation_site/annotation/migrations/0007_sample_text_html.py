"""Samples keep their Markdown rendered to safe HTML; the claim function returns it with the text.

The claim (migration 0004's `annotation_claim_next`) is the same statement with each sample's
`text_html` after its `text` (services.CLAIM_ROW reads them in that order). Its definition is taken
from 0004 and changed in those two places only, so the statement is written once; a return type
cannot be changed in place, hence DROP then CREATE.
"""
import importlib

from django.db import migrations, models

from annotation_site.db_functions import on_postgresql

_0004 = importlib.import_module("annotation_site.annotation.migrations.0004_claim_and_submit_functions")

_CHANGES = [
    ("sa_text text, sb_id bigint, sb_dialogue_id bigint, sb_text text,",
     "sa_text text, sa_text_html text, sb_id bigint, sb_dialogue_id bigint, sb_text text, sb_text_html text,"),
    ("sa.id, sa.dialogue_id, sa.text, sb.id, sb.dialogue_id, sb.text,",
     "sa.id, sa.dialogue_id, sa.text, sa.text_html, sb.id, sb.dialogue_id, sb.text, sb.text_html,"),
]  # fmt: skip


def _with_html(sql: str) -> str:
    for old, new in _CHANGES:
        assert sql.count(old) == 1, old
        sql = sql.replace(old, new)
    return sql


DROP_CLAIM = "DROP FUNCTION IF EXISTS annotation_claim_next(integer, text[], text, timestamptz, timestamptz, boolean);"


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0006_comparison_amendment_history"),
    ]

    operations = [
        migrations.AddField(
            model_name="sample",
            name="text_html",
            field=models.TextField(blank=True, default="", editable=False),
        ),
        migrations.RunPython(
            on_postgresql(DROP_CLAIM + _with_html(_0004.CLAIM_NEXT)), on_postgresql(DROP_CLAIM + _0004.CLAIM_NEXT)
        ),
    ]
