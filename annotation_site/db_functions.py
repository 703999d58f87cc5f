"""PostgreSQL functions of the hot annotation path: creating them in migrations, reading their rows.

The hot path (authenticate, submit, claim the next item) calls PostgreSQL functions, whose plans the
server keeps per session, instead of ORM queries parsed and planned anew on every request. Each
returns one flat row of several tables' columns, in an order declared once with `RowReads` and
checked against the function by the tests. Other databases (SQLite) keep the ORM path.
"""
from __future__ import annotations

import functools

from django.db import connection
from django.db.models import Model


class RowReads:
    """The tables of one flat row: (alias, model, field names), in column order."""

    def __init__(self, *reads: tuple[str, type[Model], tuple[str, ...]]):
        self.reads = reads

    @functools.cached_property
    def fields(self):
        # Resolved on first use, once the app registry is ready.
        return [(alias, model, [model._meta.get_field(name) for name in names]) for alias, model, names in self.reads]

    def column_names(self) -> list[str]:
        """`alias_column` for each column, as the functions name their output."""
        return [f"{alias}_{field.column}" for alias, _model, fields in self.fields for field in fields]

    def instances(self, row) -> dict[str, Model | None]:
        """One instance per alias (None where a LEFT JOIN found nothing: its first column, the id, is null).

        Values go through each field's from_db_value (JSON is decoded there), as the ORM does.
        """
        instances, at = {}, 0
        for alias, model, fields in self.fields:
            values = list(row[at : at + len(fields)])
            at += len(fields)
            if values[0] is None:
                instances[alias] = None
                continue
            for index, field in enumerate(fields):
                if hasattr(field, "from_db_value"):
                    values[index] = field.from_db_value(values[index], None, connection)
            instances[alias] = model.from_db(connection.alias, [field.attname for field in fields], values)
        return instances


def on_postgresql(sql: str):
    """A RunPython operation body that runs `sql` on PostgreSQL and does nothing elsewhere."""

    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run
