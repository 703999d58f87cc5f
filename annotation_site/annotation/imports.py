"""Importing preference pairs and prompts from JSONL files: parse every line, then write in bulk.

Parsing is separate from writing so a file is refused as a whole (every bad line listed with its
number and reason) before anything touches the database, and so that hundreds of thousands of
lines are written with bulk inserts in one transaction rather than row by row.
"""
from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connection, transaction
from django.utils import timezone

from annotation_site.annotation import selectors
from annotation_site.annotation.markdown import render_markdown
from annotation_site.annotation.models import (
    Comparison,
    Dialogue,
    DialogueSource,
    GuidelineKind,
    Item,
    ItemStatus,
    Rating,
    Sample,
)
from annotation_site.annotation.services import PromptSpec, safety_bin_for, validate_turns
from annotation_site.errors import ApplicationError

HUMAN, ASSISTANT = "\n\nHuman:", "\n\nAssistant:"
# Pairs written per round of inserts (the progress line moves once per chunk).
IMPORT_CHUNK = 5_000


class LineError(ValueError):
    """What is wrong with one line of an import file."""


@dataclass(frozen=True)
class PreferencePair:
    turns: list[dict]
    chosen: str
    rejected: str
    rating: str = ""
    chosen_is_safe: bool | None = None
    rejected_is_safe: bool | None = None
    chosen_model: str = ""
    rejected_model: str = ""
    chosen_sampling: dict = field(default_factory=dict)
    rejected_sampling: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


# --- parsing ---------------------------------------------------------------------------------------


def _turns_from_hh(transcript: str) -> list[dict]:
    """Split an Anthropic HH transcript ("\\n\\nHuman: ...\\n\\nAssistant: ...") into turns."""
    if not transcript.startswith(HUMAN):
        raise LineError('the transcript does not start with "\\n\\nHuman:"')
    turns: list[dict] = []
    position = 0
    while position < len(transcript):
        role, marker = ("user", HUMAN) if transcript.startswith(HUMAN, position) else ("assistant", ASSISTANT)
        start = position + len(marker)
        ends = [i for i in (transcript.find(HUMAN, start), transcript.find(ASSISTANT, start)) if i != -1]
        end = min(ends) if ends else len(transcript)
        turns.append({"role": role, "content": transcript[start:end].strip()})
        position = end
    return turns


def _check_turns(turns) -> list[dict]:
    try:
        return validate_turns(turns)
    except ApplicationError as error:
        raise LineError(f"bad dialogue: {error.message}") from None


def parse_hh_pair(row: dict) -> PreferencePair:
    """One HH-RLHF row: the dialogue is the shared prefix up to the start of the last assistant turn they share."""
    for key in ("chosen", "rejected"):
        if key not in row:
            raise LineError(f'missing key "{key}"')
        if not isinstance(row[key], str):
            raise LineError(f'"{key}" must be a transcript string')
    chosen, rejected = row["chosen"], row["rejected"]
    if chosen == rejected:
        raise LineError("the chosen and rejected transcripts are identical")
    shared = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        shared += 1
    split = chosen.rfind(ASSISTANT, 0, shared)
    if split == -1 or not rejected.startswith(ASSISTANT, split):
        raise LineError("the transcripts share no assistant turn, so there is no response to compare")
    turns = _check_turns(_turns_from_hh(chosen[:split]))
    responses = [text[split + len(ASSISTANT) :].strip() for text in (chosen, rejected)]
    for name, text in zip(("chosen", "rejected"), responses):
        if not text:
            raise LineError(f"the {name} response is empty")
        if HUMAN in text:
            # Transcripts that diverge before the last turn: the rest is not one assistant response.
            raise LineError(f"the {name} transcript goes on with a human turn after the response")
    return PreferencePair(turns=turns, chosen=responses[0], rejected=responses[1])


JSONL_KEYS = {
    "prompt", "chosen", "rejected", "rating", "guideline", "chosen_is_safe", "rejected_is_safe",
    "chosen_model", "rejected_model", "chosen_sampling", "rejected_sampling",
}
# Metadata written by our own exports; accepted so an exported batch can be imported back.
EXPORT_METADATA_KEYS = {
    "margin", "margin_table", "safety_bin", "comparison_id", "item_id", "annotator", "source", "batch", "split",
}


def _response_text(value, key: str) -> str:
    if isinstance(value, str):
        text = value
    elif (
        isinstance(value, list)
        and len(value) == 1
        and isinstance(value[0], dict)
        and value[0].get("role") == "assistant"
        and isinstance(value[0].get("content"), str)
    ):
        text = value[0]["content"]
    else:
        raise LineError(f'"{key}" must be a string or [{{"role": "assistant", "content": "..."}}]')
    if not text.strip():
        raise LineError(f'"{key}" is empty')
    return text


def _optional_bool(row: dict, key: str) -> bool | None:
    value = row.get(key)
    if value is not None and not isinstance(value, bool):
        raise LineError(f'"{key}" must be true, false or null')
    return value


def parse_jsonl_pair(row: dict, *, guideline_kind: str) -> PreferencePair:
    """One row of the project's preference format (the exported TRL conversational format, README)."""
    unknown = set(row) - JSONL_KEYS - EXPORT_METADATA_KEYS
    if unknown:
        raise LineError(f"unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("prompt", "chosen", "rejected"):
        if key not in row:
            raise LineError(f'missing key "{key}"')
    if row.get("guideline") not in (None, guideline_kind):
        raise LineError(f'the line says guideline "{row["guideline"]}" but the import is for "{guideline_kind}"')
    turns = _check_turns(row["prompt"])
    chosen, rejected = _response_text(row["chosen"], "chosen"), _response_text(row["rejected"], "rejected")
    if chosen == rejected:
        raise LineError("the chosen and rejected responses are identical")
    rating = row.get("rating") or ""
    if rating and rating not in Rating.values:
        raise LineError(f'unknown rating "{rating}" (use one of {", ".join(Rating.values)} or null)')
    chosen_is_safe, rejected_is_safe = _optional_bool(row, "chosen_is_safe"), _optional_bool(row, "rejected_is_safe")
    if chosen_is_safe is False and rejected_is_safe is True:
        raise LineError("the chosen response is unsafe and the other safe; such pairs are never used")
    for key in ("chosen_sampling", "rejected_sampling"):
        if not isinstance(row.get(key) or {}, dict):
            raise LineError(f'"{key}" must be an object')
    return PreferencePair(
        turns=turns,
        chosen=chosen,
        rejected=rejected,
        rating=rating,
        chosen_is_safe=chosen_is_safe,
        rejected_is_safe=rejected_is_safe,
        chosen_model=str(row.get("chosen_model") or ""),
        rejected_model=str(row.get("rejected_model") or ""),
        chosen_sampling=row.get("chosen_sampling") or {},
        rejected_sampling=row.get("rejected_sampling") or {},
    )


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
    return PromptSpec(turns=_check_turns(value), guideline_kind=kind)


def count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def parse_file(path: Path, parse: Callable[[dict], object], *, on_line: Callable[[], None] | None = None) -> tuple[list, list[Problem]]:
    """Parse every non-blank line; returns the parsed rows and every problem found, with line numbers."""
    rows, problems = [], []
    for number, line in _lines(path):
        if on_line:
            on_line()
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(Problem(number, f"malformed JSON ({error.msg} at column {error.colno})"))
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
    try:
        with open(path, encoding="utf-8") as handle:
            yield from enumerate(handle, start=1)
    except FileNotFoundError:
        raise ApplicationError(f"No such file: {path}") from None
    except UnicodeDecodeError as error:
        raise ApplicationError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}).") from None


# --- writing ---------------------------------------------------------------------------------------


def validate_source_name(source_name: str) -> str:
    source_name = (source_name or "").strip()
    if not source_name:
        raise ApplicationError("Name the source of the data with --source, e.g. anthropic-hh-harmless.")
    if source_name == "annotation" or len(source_name) > 200:
        raise ApplicationError('The source name must be 1-200 characters and not "annotation" (the platform\'s own).')
    if Dialogue.objects.filter(source=DialogueSource.IMPORT, source_name=source_name).exists():
        raise ApplicationError(
            f'Source "{source_name}" was imported before; import under another --source name so rows are never mixed.'
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
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Write preference pairs in bulk, in one transaction; returns how many were written.

    Without `as_items` each pair becomes a completed comparison from `source_name` (rating as given
    or unknown, no annotator); with it, a READY item for annotators to rate.
    """
    if guideline_kind not in GuidelineKind.values:
        raise ApplicationError(f'Unknown guideline "{guideline_kind}": use {" or ".join(GuidelineKind.values)}.')
    source_name = validate_source_name(source_name)
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
