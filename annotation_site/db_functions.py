"""PostgreSQL functions of the hot annotation path: their text, installing it, reading their rows.

The hot path (authenticate, submit, claim the next item) calls PostgreSQL functions, whose plans the
server keeps per session, instead of ORM queries parsed and planned anew on every request
(`bench/annotate_load.py --hot-path functions,orm` measures the difference: docs/performance.md).
Each function's text is a `DatabaseFunction` in the module whose Python calls it and reads its row
(`accounts.authentication`, `annotation.services.claims`, `annotation.services.submissions`);
migrations install that text with `InstallFunction`. Each returns one flat row of several tables'
columns, in an order declared once with `RowReads` and checked against the function by the tests.
SQLite, the demo's database, runs the ORM path written beside each function.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, migrations
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


def uses_database_functions() -> bool:
    """Whether the hot path calls the PostgreSQL functions: on PostgreSQL, unless ANNOTATION_DB_FUNCTIONS
    is false (the ORM path, as on SQLite, which the benchmark compares with them)."""
    return connection.vendor == "postgresql" and settings.ANNOTATION_DB_FUNCTIONS


def on_postgresql(sql: str):
    """A RunPython operation body that runs `sql` on PostgreSQL and does nothing elsewhere."""

    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


@dataclass(frozen=True)
class DatabaseFunction:
    """One PL/pgSQL function: its name and the statement that creates it (`CREATE FUNCTION ... AS $$...$$`)."""

    name: str
    create: str

    @property
    def body(self) -> str:
        """The text between the dollar quotes, as PostgreSQL stores it (`pg_proc.prosrc`)."""
        return self.create.split("$$")[1]

    @property
    def digest(self) -> str:
        """A short hash of the text, recorded by the migration that installs it."""
        return hashlib.sha256(self.create.encode()).hexdigest()[:16]

    def install_sql(self) -> str:
        # Dropped first: CREATE OR REPLACE cannot change the arguments or the returned columns.
        # By name only: one function of each name exists.
        return f"DROP FUNCTION IF EXISTS {self.name};\n{self.create}"


class InstallFunction(migrations.RunPython):
    """A migration operation installing, on PostgreSQL, the current text of `function` from its module.

    `digest` is `function.digest` when the migration was written. A test checks that the newest
    InstallFunction of each function carries the module's current digest, so changing the SQL
    without a migration to install it fails the tests: write a new migration with
    InstallFunction(function, digest=<the new digest>). Older migrations then install the newer
    text too, which PL/pgSQL allows: column names in a body are resolved when it runs, not when it
    is created. `reverse_sql` restores what was installed before (on PostgreSQL).
    """

    def __init__(self, function: DatabaseFunction, *, digest: str, reverse_sql: str):
        self.function, self.digest = function, digest
        super().__init__(on_postgresql(function.install_sql()), on_postgresql(reverse_sql))
