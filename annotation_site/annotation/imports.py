"""Importing preference pairs and prompts from JSONL files: parse every line, then write in bulk.

Parsing is separate from writing so a file is refused as a whole (every bad line listed with its
number and reason) before anything touches the database, and so that hundreds of thousands of
lines are written with bulk inserts in one transaction rather than row by row.
"""
from __future__ import annotations

import datetime as dt
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from annotation_site.annotation import selectors
from annotation_site.annotation.markdown import render_markdown
from annotation_site.annotation.models import (
    Comparison,
    Dialogue,
    DialogueSource,
    GuidelineKind,
    ImportSplit,
    Item,
    ItemStatus,
    Sample,
)
from annotation_site.annotation.preference_formats import LineError, PreferencePair, check_turns
from annotation_site.annotation.services import PromptSpec, safety_bin_for
from annotation_site.errors import ApplicationError

# Pairs written per round of inserts (the progress line moves once per chunk).
IMPORT_CHUNK = 5_000


@dataclass(frozen=True)
class Problem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


# --- parsing (the preference formats are in preference_formats.py) --------------------------------


def pair_report(pairs: list[PreferencePair]) -> dict[str, Counter]:
    """How many pairs needed each normalisation, and how many lines had each column that was not read."""
    return {
        "normalised": Counter(note for pair in pairs for note in pair.notes),
        "ignored_keys": Counter(key for pair in pairs for key in pair.ignored_keys),
    }


def parse_prompt(row: dict, *, guideline_kind: str) -> PromptSpec:
    """One prompt line: {"prompt": "text"} or {"prompt": [turns...]} (also "messages"), optional "guideline"."""
    unknown = set(row) - {"prompt", "messages", "guideline"}
    if unknown:
        raise LineError(f"unknown key(s) {', '.join(sorted(unknown))}")
    if ("prompt" in row) == ("messages" in row):
        raise LineError('give exactly one of "prompt" or "messages"')
    value = row.get("prompt", row.get("messages"))
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    kind = row.get("guideline", guideline_kind)
    if kind not in GuidelineKind.values:
        raise LineError(f'unknown guideline "{kind}" (use {" or ".join(GuidelineKind.values)})')
    return PromptSpec(turns=check_turns(value), guideline_kind=kind)


def count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def parse_file(path: Path, parse: Callable[[dict], object], *, on_line: Callable[[], None] | None = None) -> tuple[list, list[Problem]]:
    """Parse every non-blank line; returns the parsed rows and every problem found, with line numbers."""
    rows, problems = [], []
    for number, line in _lines(path):
        if on_line:
            on_line()
        if isinstance(line, _NotUTF8):
            problems.append(Problem(number, str(line)))
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(Problem(number, f"malformed JSON ({error.msg} at column {error.colno})"))
            continue
        except RecursionError:
            problems.append(Problem(number, "JSON nested too deeply"))
            continue
        if not isinstance(row, dict):
            problems.append(Problem(number, "each line must be a JSON object"))
            continue
        try:
            rows.append(parse(row))
        except LineError as error:
            problems.append(Problem(number, str(error)))
    return rows, problems


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Each line decoded on its own, so a line that is not UTF-8 is refused with its number."""
    try:
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    yield number, _NotUTF8(f"not UTF-8 text ({error.reason} at byte {error.start} of the line)")
    except FileNotFoundError:
        raise ApplicationError(f"No such file: {path}") from None


class _NotUTF8(str):
    """A line that could not be decoded: its text is the reason."""


# --- writing ---------------------------------------------------------------------------------------


def validate_source_name(source_name: str, *, split: str = "") -> str:
    """A new source name; with a split, also the name of a source imported before under the other split
    (a dataset's train and test files are imported as one source, one file per split)."""
    source_name = (source_name or "").strip()
    if not source_name:
        raise ApplicationError("Name the source of the data with --source, e.g. anthropic-hh-harmless.")
    if source_name == "annotation" or len(source_name) > 200:
        raise ApplicationError('The source name must be 1-200 characters and not "annotation" (the platform\'s own).')
    if Dialogue.objects.filter(source=DialogueSource.IMPORT, source_name=source_name).exists():
        earlier = set(Comparison.objects.filter(source=source_name).values_list("split", flat=True).distinct())
        if not split or not earlier or split in earlier:
            what = f" with --split {split}" if split and split in earlier else ""
            raise ApplicationError(
                f'Source "{source_name}" was imported before{what}; import under another --source name so rows are never mixed.'
            )
    return source_name


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value) -> str:
    """One value in PostgreSQL COPY text format."""
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (dict, list)):
        value = json.dumps(value)
    elif isinstance(value, dt.datetime):
        value = value.isoformat()
    return str(value).translate(_COPY_ESCAPES)


def insert_rows(model, rows: list[dict]) -> list[int]:
    """Insert rows (field attname -> value; other fields take their defaults) and return their ids.

    On PostgreSQL the rows go in with COPY, ids reserved from the table's sequence first: Django has
    no COPY, and profiling showed bulk_create spending most of an import in per-field Python
    preparation (about 4x slower for 100k pairs). Other databases use bulk_create.
    """
    if not rows:
        return []
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    now = timezone.now()
    defaults = {
        f.attname: now if getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False) else f.get_default()
        for f in fields
    }
    if connection.vendor != "postgresql":
        created = model.objects.bulk_create([model(**{**defaults, **row}) for row in rows])
        return [obj.pk for obj in created]
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, len(rows)]
        )
        ids = [row[0] for row in cursor.fetchall()]
        given = [f for f in fields if f.attname in rows[0]]
        defaulted = [f for f in fields if f.attname not in rows[0]]
        # Defaults are the same on every row: rendered once, in the columns after the given ones.
        columns = ["id"] + [f.column for f in given + defaulted]
        constant = "".join("\t" + _copy_text(defaults[f.attname]) for f in defaulted)
        buffer = io.StringIO()
        for pk, row in zip(ids, rows):
            buffer.write(str(pk))
            for f in given:
                buffer.write("\t" + _copy_text(row[f.attname]))
            buffer.write(constant + "\n")
        buffer.seek(0)
        quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
        cursor.copy_expert(f"COPY {connection.ops.quote_name(table)} ({quoted}) FROM STDIN", buffer)
    return ids


def preferences_import(
    *,
    pairs: list[PreferencePair],
    guideline_kind: str,
    source_name: str,
    as_items: bool,
    as_gold: bool = False,
    split: str = ImportSplit.TRAIN,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Write preference pairs in bulk, in one transaction; returns how many were written.

    Without `as_items` each pair becomes a completed comparison from `source_name` (rating as given
    or unknown, no annotator) in `split`: a "test" file is only ever evaluated on, never trained
    on. With `as_items`, a READY item for annotators to rate (their comparisons are the platform's
    own and go to the weekly batches, so a split does not apply). With `as_gold`, the items are
    gold items of the quality app instead: `chosen` is the known better response, `rating` the
    weakest strength that counts as right, the safety labels the expected ones.
    """
    as_items = as_items or as_gold
    if guideline_kind not in GuidelineKind.values:
        raise ApplicationError(f'Unknown guideline "{guideline_kind}": use {" or ".join(GuidelineKind.values)}.')
    if split not in ImportSplit.values:
        raise ApplicationError(f'Unknown split "{split}": use {" or ".join(ImportSplit.values)}.')
    source_name = validate_source_name(source_name, split="" if as_items else split)
    guideline = selectors.guideline_current(kind=guideline_kind)
    overlap = guideline.overlap if (guideline and as_items) else 1
    default_model = f"import:{source_name}"
    with transaction.atomic():
        for start in range(0, len(pairs), IMPORT_CHUNK):
            chunk = pairs[start : start + IMPORT_CHUNK]
            dialogue_ids = insert_rows(
                Dialogue,
                [
                    {"turns": p.turns, "guideline_kind": guideline_kind, "source": DialogueSource.IMPORT, "source_name": source_name}
                    for p in chunk
                ],
            )
            sample_ids = insert_rows(
                Sample,
                [
                    row
                    for p, dialogue_id in zip(chunk, dialogue_ids)
                    for row in (
                        # Rendered only for pairs queued for annotators (Sample.text_html).
                        {"dialogue_id": dialogue_id, "text": p.chosen, "text_html": render_markdown(p.chosen) if as_items else "",
                         "model_name": p.chosen_model or default_model, "sampling_params": p.chosen_sampling},
                        {"dialogue_id": dialogue_id, "text": p.rejected, "text_html": render_markdown(p.rejected) if as_items else "",
                         "model_name": p.rejected_model or default_model, "sampling_params": p.rejected_sampling},
                    )
                ],
            )
            item_ids = insert_rows(
                Item,
                [
                    {
                        "dialogue_id": dialogue_id,
                        "guideline_kind": guideline_kind,
                        "sample_a_id": sample_ids[2 * index],
                        "sample_b_id": sample_ids[2 * index + 1],
                        "status": ItemStatus.READY if as_items else ItemStatus.DONE,
                        "overlap": overlap,
                        "open_slots": overlap if as_items else 0,
                    }
                    for index, dialogue_id in enumerate(dialogue_ids)
                ],
            )
            if as_gold:
                from annotation_site.quality.services import gold_bulk_create

                gold_bulk_create(
                    golds=[
                        {"item_id": item_id, "better_sample_id": sample_ids[2 * index], "weakest_rating": p.rating,
                         "better_is_safe": p.chosen_is_safe, "other_is_safe": p.rejected_is_safe}
                        for index, (p, item_id) in enumerate(zip(chunk, item_ids))
                    ],
                    source=source_name,
                )  # fmt: skip
            if not as_items:
                insert_rows(
                    Comparison,
                    [
                        {
                            "item_id": item_id,
                            "guideline_kind": guideline_kind,
                            "chosen_id": sample_ids[2 * index],
                            "rejected_id": sample_ids[2 * index + 1],
                            "rating": p.rating,
                            "chosen_is_safe": p.chosen_is_safe,
                            "rejected_is_safe": p.rejected_is_safe,
                            "safety_bin": _bin(p),
                            "source": source_name,
                            "split": split,
                        }
                        for index, (p, item_id) in enumerate(zip(chunk, item_ids))
                    ],
                )
            if on_chunk:
                on_chunk(len(chunk))
    return len(pairs)


def _bin(pair: PreferencePair) -> str:
    if pair.chosen_is_safe is None or pair.rejected_is_safe is None:
        return ""
    return safety_bin_for(chosen_is_safe=pair.chosen_is_safe, rejected_is_safe=pair.rejected_is_safe)
