"""One writer per file format of the exported folder (docs/export-format.md).

A row writer is built with `(folder, options, background)`, is given every exported row with
`add(row)`, queues its last writes with `close()` and lists the files it wrote in `outputs`
(each with `.path` and `.entry()`, the manifest's row count and sha256, read once the background
thread has finished). Comparison writers get `rows.ComparisonRow`s, demonstration writers
`rows.DemonstrationRow`s, the retracted writer the entries of `retracted.jsonl`. `FILES` names
what a writer writes. The manifest and the data card are written last, from the manifest dict.

Lines are orjson with sorted keys at every level (OPT_SORT_KEYS), so the bytes do not depend on
how a row was built; every field name comes from the contract (training/export_format.py). Writing
the keys in sorted order by hand instead, as the exporter once did, measured no faster: 35,069
rows/s against 35,172 with OPT_SORT_KEYS on 1M rows (bench/export.py --against, 2026-12-01).
"""
from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from annotation_site.batches.export.files import Background, LineFile, file_sha256, fsync_path, write_file
from annotation_site.batches.export.options import ExportOptions
from annotation_site.batches.export.rows import ComparisonRow, DemonstrationRow
from training.export_format import (
    DATA_CARD_FILE,
    HH_ASSISTANT,
    HH_FILES,
    MANIFEST_FILE,
    PARQUET_FILES,
    PREFERENCE_FIELDS,
    PREFERENCE_FILES,
    RETRACTED_FILE,
    SFT_FILE,
    SPLITS,
    hh_transcript,
)

_LINE = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


class PreferencesJsonl:
    """`preferences.{train,test}.jsonl`: TRL's conversational preference rows plus metadata."""

    FILES = tuple(PREFERENCE_FILES.values())

    def __init__(self, folder: Path, options: ExportOptions, background: Background):
        self.options = options
        self.files = {split: LineFile(folder / PREFERENCE_FILES[split], background) for split in SPLITS}
        self.outputs = list(self.files.values())

    def add(self, row: ComparisonRow) -> None:
        self.files[row.split].add_line(
            orjson.dumps(
                {
                    "prompt": row.prompt,
                    "chosen": [{"role": "assistant", "content": row.chosen_text}],
                    "rejected": [{"role": "assistant", "content": row.rejected_text}],
                    "margin": row.margin,
                    "margin_table": self.options.margin_table,
                    "rating": row.rating,
                    "guideline": row.guideline,
                    "chosen_is_safe": row.chosen_is_safe,
                    "rejected_is_safe": row.rejected_is_safe,
                    "safety_bin": row.safety_bin,
                    "comparison_id": row.comparison_id,
                    "item_id": row.item_id,
                    "annotator": row.annotator,
                    "chosen_model": row.chosen_model,
                    "chosen_checkpoint": row.chosen_checkpoint,
                    "chosen_sampling": orjson.Fragment(row.chosen_sampling_json),
                    "rejected_model": row.rejected_model,
                    "rejected_checkpoint": row.rejected_checkpoint,
                    "rejected_sampling": orjson.Fragment(row.rejected_sampling_json),
                    "source": row.source,
                    "batch": self.options.batch,
                    "split": row.split,
                },
                option=_LINE,
            )
        )

    def close(self) -> None:
        for file in self.outputs:
            file.close()


class HhJsonl:
    """`hh.{train,test}.jsonl`: the same comparisons as Anthropic HH-RLHF transcripts."""

    FILES = tuple(HH_FILES.values())

    def __init__(self, folder: Path, options: ExportOptions, background: Background):
        self.files = {split: LineFile(folder / HH_FILES[split], background) for split in SPLITS}
        self.outputs = list(self.files.values())

    def add(self, row: ComparisonRow) -> None:
        context = hh_transcript(row.prompt)
        self.files[row.split].add_line(
            orjson.dumps(
                {
                    "chosen": context + HH_ASSISTANT + row.chosen_text,
                    "rejected": context + HH_ASSISTANT + row.rejected_text,
                    "comparison_id": row.comparison_id,
                    "guideline": row.guideline,
                    "margin": row.margin,
                },
                option=_LINE,
            )
        )

    def close(self) -> None:
        for file in self.outputs:
            file.close()


# Rows per Parquet row group. Fixed, not tied to the database chunk size, so the Parquet bytes
# depend only on the rows and a re-export with another chunk size writes the same files.
PARQUET_ROW_GROUP_ROWS = 10_000

_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
_MESSAGES = pa.list_(_MESSAGE)
# Sampling parameters differ between engines, so Parquet keeps them as JSON text (sorted keys)
# rather than a struct whose fields would change from batch to batch.
_PARQUET_TYPES = {
    "prompt": _MESSAGES, "chosen": _MESSAGES, "rejected": _MESSAGES, "margin": pa.float64(),
    "chosen_is_safe": pa.bool_(), "rejected_is_safe": pa.bool_(), "comparison_id": pa.int64(), "item_id": pa.int64(),
}  # fmt: skip
PARQUET_SCHEMA = pa.schema([(name, _PARQUET_TYPES.get(name, pa.string())) for name in PREFERENCE_FIELDS])


def _messages_array(dialogues) -> pa.ListArray:
    """A list<struct<role, content>> column built from flat lists: pyarrow's conversion of nested
    Python dicts costs ~25 us a row, this ~1 us."""
    offsets, roles, contents = [0], [], []
    for turns in dialogues:
        for turn in turns:
            roles.append(turn["role"])
            contents.append(turn["content"])
        offsets.append(len(roles))
    messages = pa.StructArray.from_arrays([pa.array(roles, pa.string()), pa.array(contents, pa.string())], fields=list(_MESSAGE))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), messages)


def _responses_array(texts) -> pa.ListArray:
    """A list<struct<role, content>> column of one assistant message per row."""
    count = len(texts)
    messages = pa.StructArray.from_arrays(
        [pa.array(["assistant"] * count, pa.string()), pa.array(texts, pa.string())], fields=list(_MESSAGE)
    )
    return pa.ListArray.from_arrays(pa.array(range(count + 1), pa.int32()), messages)


class _ParquetSplit:
    """One split's Parquet file, written a row group at a time from columns.

    Columns are built with pyarrow from plain lists (the assistant messages from their texts, with
    offsets) rather than from row dicts: converting dicts costs more than the rest of the export.
    """

    def __init__(self, path: Path, options: ExportOptions, split: str, background: Background):
        self.path = path
        self.background = background
        self.writer = pq.ParquetWriter(path, PARQUET_SCHEMA, compression="zstd")
        self.constants = {"margin_table": options.margin_table, "batch": options.batch, "split": split}
        self.rows: list[ComparisonRow] = []
        self.count = 0

    def add(self, row: ComparisonRow) -> None:
        self.rows.append(row)
        self.count += 1
        if len(self.rows) == PARQUET_ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        columns = dict(zip(ComparisonRow._fields, zip(*self.rows)))
        count = len(self.rows)
        arrays = []
        for field in PARQUET_SCHEMA:
            if field.name == "prompt":
                arrays.append(_messages_array(columns["prompt"]))
            elif field.name in ("chosen", "rejected"):
                arrays.append(_responses_array(columns[f"{field.name}_text"]))
            elif field.name in ("chosen_sampling", "rejected_sampling"):
                arrays.append(pa.array([text.decode() for text in columns[f"{field.name}_json"]], field.type))
            elif field.name in self.constants:
                arrays.append(pa.array([self.constants[field.name]] * count, field.type))
            else:
                arrays.append(pa.array(columns[field.name], field.type))
        # Compression and writing release the GIL: they run on the background thread.
        self.background.submit(self.writer.write_table, pa.Table.from_arrays(arrays, schema=PARQUET_SCHEMA), count)
        self.rows = []

    def close(self) -> None:
        self.flush()
        self.background.submit(self._close)

    def _close(self) -> None:
        self.writer.close()
        fsync_path(self.path)

    def entry(self) -> dict:
        return {"rows": self.count, "sha256": file_sha256(self.path)}


class PreferencesParquet:
    """`preferences.{train,test}.parquet`: the preference rows as columns (zstd), for datasets/pandas."""

    FILES = tuple(PARQUET_FILES.values())

    def __init__(self, folder: Path, options: ExportOptions, background: Background):
        self.files = {split: _ParquetSplit(folder / PARQUET_FILES[split], options, split, background) for split in SPLITS}
        self.outputs = list(self.files.values())

    def add(self, row: ComparisonRow) -> None:
        self.files[row.split].add(row)

    def close(self) -> None:
        for file in self.outputs:
            file.close()


class SftJsonl:
    """`sft.jsonl`: each demonstration as `messages`, the dialogue then the demonstration."""

    FILES = (SFT_FILE,)

    def __init__(self, folder: Path, options: ExportOptions, background: Background):
        self.options = options
        self.file = LineFile(folder / SFT_FILE, background)
        self.outputs = [self.file]

    def add(self, row: DemonstrationRow) -> None:
        self.file.add_line(
            orjson.dumps(
                {
                    "messages": [*row.prompt, {"role": "assistant", "content": row.text}],
                    "guideline": row.guideline,
                    "demonstration_id": row.demonstration_id,
                    "annotator": row.annotator,
                    "source": row.source,
                    "batch": self.options.batch,
                },
                option=_LINE,
            )
        )

    def close(self) -> None:
        self.file.close()


class RetractedJsonl:
    """`retracted.jsonl`: comparisons of earlier batches that quality control excluded since they
    were exported; the training data loader drops them from every folder it reads."""

    FILES = (RETRACTED_FILE,)

    def __init__(self, folder: Path, options: ExportOptions, background: Background):
        self.file = LineFile(folder / RETRACTED_FILE, background)
        self.outputs = [self.file]

    def add(self, entry: dict) -> None:
        self.file.add_line(orjson.dumps(entry, option=_LINE))

    def close(self) -> None:
        self.file.close()


def write_manifest(folder: Path, manifest: dict) -> None:
    """`manifest.json`: counts, options and checksums, indented."""
    write_file(folder / MANIFEST_FILE, orjson.dumps(manifest, option=_LINE | orjson.OPT_INDENT_2))


def write_data_card(folder: Path, manifest: dict) -> None:
    """`README.md`: the manifest in prose, for people who open the folder."""
    title = f"Batch {manifest['batch']}" if manifest["batch"] else f"Source dataset {manifest['name']}"
    counts = manifest["counts"]
    lines = [
        f"# {title}",
        "",
        f"Human preference comparisons exported by the RLHF loop (export format {manifest['format_version']},"
        f" code version {manifest['code_version']}).",
        "",
        f"- comparisons: {manifest['comparisons']} (train {counts['split'].get('train', 0)},"
        f" test {counts['split'].get('test', 0)}); SFT demonstrations: {manifest['demonstrations']}",
        f"- margin table: {manifest['margin_table']} (Llama 2, Table 27): "
        + ", ".join(f"{rating} {value:.3g}" for rating, value in manifest["margins"].items()),
        f"- test split: {manifest['test_split']['rule']}",
        "- pairs whose chosen response is unsafe while the other is safe are left out "
        f"({manifest['excluded_chosen_unsafe_other_safe']} left out)",
        f"- quality control held back {manifest['held_back']['gold']} answers on gold items and "
        f"{sum(manifest['held_back']['excluded'].values())} excluded comparisons; "
        f"{manifest['files'][RETRACTED_FILE]['rows']} comparisons of earlier batches are retracted (`{RETRACTED_FILE}`)",
        "",
    ]
    for name in ("guideline", "rating", "safety_bin", "source", "annotator"):
        lines.append(f"## By {name.replace('_', ' ')}")
        lines.append("")
        lines.extend(f"- {key}: {value}" for key, value in counts[name].items())
        lines.append("")
    lines.append("## Files")
    lines.append("")
    lines.extend(
        f"- `{name}`: {entry['rows']} rows, sha256 `{entry['sha256']}`" for name, entry in manifest["files"].items()
    )
    lines.append("")
    write_file(folder / DATA_CARD_FILE, "\n".join(lines).encode("utf-8"))
