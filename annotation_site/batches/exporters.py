"""Writes comparisons and demonstrations as an exported batch folder (docs/export-format.md, contract §2 of docs/architecture.md).

Files: `preferences.{train,test}.jsonl` (TRL's conversational preference format plus metadata) and
their `.parquet` twins, `hh.{train,test}.jsonl` (Anthropic HH transcripts), `sft.jsonl`,
`manifest.json` and a data card `README.md`.

Rows are streamed from the database with `values_list(...).iterator(chunk_size=...)` (a server-side
cursor on PostgreSQL, read one chunk ahead in a thread) and encoded with orjson; a background
thread writes and hashes the lines and compresses the Parquet row groups a chunk at a time (those
release the GIL), so memory stays flat however big the batch is. Everything is ordered by id, keys
are sorted and no clock is read, so exporting the same rows with the same options writes the same
bytes. The folder is written beside its final place and renamed into place only once complete and
fsynced: a crash never leaves a half batch.
"""
from __future__ import annotations

import errno
import fcntl
import gc
import hashlib
import heapq
import mmap
import os
import queue
import shutil
import threading
import uuid
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from django.db import connection, transaction
from django.db.models import Count, F, QuerySet, TextField
from django.db.models.functions import Cast

from annotation_site.accounts.models import AnnotatorProfile
from annotation_site.annotation.models import Rating

EXPORT_FORMAT_VERSION = 1

# Llama 2, Table 27: the margin m(r) subtracted in the reward-model loss (eq. 2), by rating.
MARGIN_TABLES: dict[str, dict[str, float]] = {
    "small": {
        Rating.SIGNIFICANTLY_BETTER.value: 1.0,
        Rating.BETTER.value: 2 / 3,
        Rating.SLIGHTLY_BETTER.value: 1 / 3,
        Rating.NEGLIGIBLY_BETTER.value: 0.0,
    },
    "large": {
        Rating.SIGNIFICANTLY_BETTER.value: 3.0,
        Rating.BETTER.value: 2.0,
        Rating.SLIGHTLY_BETTER.value: 1.0,
        Rating.NEGLIGIBLY_BETTER.value: 0.0,
    },
}

PREFERENCE_FILES = ("preferences.train.jsonl", "preferences.test.jsonl")
PARQUET_FILES = ("preferences.train.parquet", "preferences.test.parquet")
HH_FILES = ("hh.train.jsonl", "hh.test.jsonl")
SFT_FILE = "sft.jsonl"
SPLITS = ("train", "test")
# Rows per Parquet row group. Fixed, not tied to the database chunk size, so the Parquet bytes
# depend only on the rows and a re-export with another chunk size writes the same files.
PARQUET_ROW_GROUP_ROWS = 10_000

_ORJSON_LINE = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE

_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
_MESSAGES = pa.list_(_MESSAGE)
# Sampling parameters differ between engines, so Parquet keeps them as JSON text (sorted keys)
# rather than a struct whose fields would change from batch to batch.
PARQUET_SCHEMA = pa.schema(
    [
        ("prompt", _MESSAGES),
        ("chosen", _MESSAGES),
        ("rejected", _MESSAGES),
        ("margin", pa.float64()),
        ("margin_table", pa.string()),
        ("rating", pa.string()),
        ("guideline", pa.string()),
        ("chosen_is_safe", pa.bool_()),
        ("rejected_is_safe", pa.bool_()),
        ("safety_bin", pa.string()),
        ("comparison_id", pa.int64()),
        ("item_id", pa.int64()),
        ("annotator", pa.string()),
        ("chosen_model", pa.string()),
        ("chosen_checkpoint", pa.string()),
        ("chosen_sampling", pa.string()),
        ("rejected_model", pa.string()),
        ("rejected_checkpoint", pa.string()),
        ("rejected_sampling", pa.string()),
        ("source", pa.string()),
        ("batch", pa.string()),
        ("split", pa.string()),
    ]
)


class ExportError(Exception):
    pass


@dataclass(frozen=True)
class ExportOptions:
    """Everything besides the rows that decides the bytes of an export."""

    margin_table: str
    # >= 1: hold out about this many comparisons (whole items); in (0, 1): this fraction of items;
    # 0: none. Pairs an imported file declared as its test split are held out whatever this says.
    test_size: float
    # A count never holds out more than this fraction of the comparisons.
    test_max_fraction: float
    code_version: str
    # The batch's week ("2026-W48") or None for an exported source dataset.
    batch: str | None
    # Written as the manifest's "created"; taken from the batch, never from the clock.
    created: str | None = None
    # Hold out every comparison (export_source --test-size all: a dataset that is only evaluated on).
    test_all: bool = False

    def __post_init__(self):
        if self.margin_table not in MARGIN_TABLES:
            raise ExportError(
                f'Unknown margin table "{self.margin_table}": use one of {", ".join(sorted(MARGIN_TABLES))}.'
            )
        if not (self.test_size == 0 or 0 < self.test_size < 1 or (self.test_size >= 1 and self.test_size == int(self.test_size))):
            raise ExportError(
                f"The test size must be 0 (no hold-out), a whole count >= 1 or a fraction in (0, 1), got {self.test_size:g}."
            )
        if not 0 < self.test_max_fraction <= 1:
            raise ExportError(f"The test max fraction must be in (0, 1], got {self.test_max_fraction}.")

    @classmethod
    def from_dict(cls, data: dict) -> "ExportOptions":
        return cls(**data)

    def as_dict(self) -> dict:
        return asdict(self)


def item_hash(item_id: int) -> int:
    """A stable 64-bit hash of an item id: the key of the hold-out split."""
    return int.from_bytes(hashlib.blake2b(b"item:%d" % item_id, digest_size=8).digest(), "big")


_HASH_SPACE = 2**64


def test_items(comparisons: QuerySet, options: ExportOptions) -> Callable[[int], bool]:
    """Decide the hold-out side of each item, so all annotations of an item fall on the same side.

    A fraction takes the items whose hash falls below it. A count takes items in hash order until
    about that many comparisons are held out; only the `count` smallest hashes are ever kept (a
    bounded heap), so this stays small whatever the batch size.
    """
    if options.test_all:
        return lambda item_id: True
    if options.test_size == 0:
        return lambda item_id: False
    if options.test_size < 1:
        threshold = int(options.test_size * _HASH_SPACE)
        return lambda item_id: item_hash(item_id) < threshold
    per_item = comparisons.order_by().values_list("item_id").annotate(n=Count("id"))
    total = 0
    smallest: list[tuple[int, int, int]] = []  # the smallest hashes, as a max-heap: (-hash, item_id, n)
    wanted = int(options.test_size)
    for item_id, count in per_item.iterator(chunk_size=10_000):
        total += count
        entry = (-item_hash(item_id), item_id, count)
        if len(smallest) < wanted:
            heapq.heappush(smallest, entry)
        elif entry > smallest[0]:
            heapq.heapreplace(smallest, entry)
    target = min(wanted, int(total * options.test_max_fraction))
    chosen: set[int] = set()
    held_out = 0
    for _, item_id, count in sorted(smallest, reverse=True):
        if held_out >= target:
            break
        chosen.add(item_id)
        held_out += count
    return chosen.__contains__


def _transcript(turns: list[dict]) -> str:
    """Anthropic HH style: "\\n\\nHuman: ...\\n\\nAssistant: ..." for each turn."""
    return "".join(
        [("\n\nHuman: " if turn["role"] == "user" else "\n\nAssistant: ") + turn["content"] for turn in turns]
    )


class _Background:
    """One thread that runs file writes, hashing and Parquet compression in order, beside the encoder.

    File writes, sha256 and pyarrow's Parquet writer release the GIL, so they run on the second
    core while the main thread encodes the next rows. At most `depth` jobs wait (each holds one
    chunk of encoded rows), so memory stays bounded; an error in a job is raised at the next
    submit or at close.
    """

    def __init__(self, depth: int = 4):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-writer")
        self.pending: deque[Future] = deque()
        self.depth = depth

    def submit(self, job: Callable, *args) -> None:
        while self.pending and (len(self.pending) >= self.depth or self.pending[0].done()):
            self.pending.popleft().result()
        self.pending.append(self.executor.submit(job, *args))

    def close(self) -> None:
        """Wait for every job (raising the first error) and stop the thread."""
        try:
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.executor.shutdown(wait=True, cancel_futures=True)


# Linux only; elsewhere the files go through the page cache like any other.
_O_DIRECT = getattr(os, "O_DIRECT", 0)


def _open_direct(path: str, flags: int) -> int:
    """An `open()` opener that adds O_DIRECT where the filesystem accepts it."""
    try:
        return os.open(path, flags | _O_DIRECT, 0o666)
    except OSError as error:
        if error.errno != errno.EINVAL:
            raise
        return os.open(path, flags, 0o666)


class _HashingFile:
    """A binary file of lines, hashed and written in large aligned blocks on the background thread,
    so checksums need no second read of the data and the encoder never waits on the disk.

    Lines are copied straight into page-aligned buffers (no list of lines to join), and the blocks
    are written with O_DIRECT: copying 3.8 GB into the page cache cost the kernel about 2 of the
    export's 4 system CPU-seconds per million rows, and the fsync then had gigabytes to flush. Filesystems that refuse
    O_DIRECT (tmpfs before Linux 6.6) get the same blocks through the page cache. The last,
    partial block is written after O_DIRECT is cleared, since direct writes must be whole blocks.
    """

    # A multiple of any disk's block size; a few of these per file bound the memory.
    BLOCK_BYTES = 4 << 20
    BLOCKS = 3

    def __init__(self, path: Path, background: _Background):
        self.path = path
        self.background = background
        self.handle = open(path, "wb", buffering=0, opener=_open_direct)
        self.sha256 = hashlib.sha256()
        self.rows = 0
        # Anonymous mmaps are page-aligned, as O_DIRECT needs; the writer hands each back once written.
        self.free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        for _ in range(self.BLOCKS):
            self.free.put(mmap.mmap(-1, self.BLOCK_BYTES))
        self.block = self.free.get()
        self.used = 0

    def add_line(self, line: bytes) -> None:
        self.rows += 1
        end = self.used + len(line)
        if end <= self.BLOCK_BYTES:
            self.block[self.used : end] = line
            self.used = end
        else:
            self._add_across_blocks(line)

    def _add_across_blocks(self, line: bytes) -> None:
        rest = memoryview(line)
        while rest:
            if self.used == self.BLOCK_BYTES:
                self.background.submit(self._write, self.block, self.used)
                self.block, self.used = self.free.get(), 0
            taken = min(len(rest), self.BLOCK_BYTES - self.used)
            self.block[self.used : self.used + taken] = rest[:taken]
            self.used += taken
            rest = rest[taken:]

    def _write(self, block: mmap.mmap, size: int) -> None:
        with memoryview(block) as view:
            data = view[:size]
            self.sha256.update(data)
            if size % self.BLOCK_BYTES:
                descriptor = self.handle.fileno()
                fcntl.fcntl(descriptor, fcntl.F_SETFL, fcntl.fcntl(descriptor, fcntl.F_GETFL) & ~_O_DIRECT)
            while data:
                data = data[self.handle.write(data) :]
        self.free.put(block)

    def close(self) -> None:
        """Queue the last block and the fsync; the file is complete once the background has closed."""
        self.background.submit(self._write, self.block, self.used)
        self.background.submit(self._close)

    def _close(self) -> None:
        os.fsync(self.handle.fileno())
        self.handle.close()
        while not self.free.empty():
            self.free.get().close()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_COMPARISON_COLUMNS = (
    "id",
    "item_id",
    "guideline_kind",
    "rating",
    "chosen_is_safe",
    "rejected_is_safe",
    "safety_bin",
    "source",
    "turns_json",
    "chosen__text",
    "chosen__model_name",
    "chosen__checkpoint__name",
    "chosen_sampling_json",
    "rejected__text",
    "rejected__model_name",
    "rejected__checkpoint__name",
    "rejected_sampling_json",
    "annotator__profile__pseudonym",
    "split",
)


def exportable(comparisons: QuerySet) -> QuerySet:
    """Leave out pairs whose chosen response is unsafe and the other safe (Llama 2, §3.2.2).

    The database refuses such rows already; the export filters them again so no import path or
    future constraint change can ever let one into a training file.
    """
    return comparisons.exclude(chosen_is_safe=False, rejected_is_safe=True)


def comparison_rows(comparisons: QuerySet, chunk_size: int) -> Iterator[tuple]:
    """One flat tuple per exportable comparison, in id order, from a single joined query.

    JSON columns come back as their text (Cast) and are parsed with orjson: faster than Django's
    json.loads converter, which matters at a million rows.
    """
    return (
        exportable(comparisons)
        .annotate(
            turns_json=Cast(F("item__dialogue__turns"), TextField()),
            chosen_sampling_json=Cast(F("chosen__sampling_params"), TextField()),
            rejected_sampling_json=Cast(F("rejected__sampling_params"), TextField()),
        )
        .order_by("id")
        .values_list(*_COMPARISON_COLUMNS)
        .iterator(chunk_size=chunk_size)
    )


_DONE = object()


def prefetched(rows: Callable[[], Iterator[tuple]], chunk_size: int) -> Iterator[tuple]:
    """Yield `rows()`, fetching the next chunk in a thread while the caller writes this one.

    A server-side cursor outside a transaction is declared WITH HOLD, which makes PostgreSQL run
    the whole query and store every row before the first fetch (gigabytes for a big batch), and
    the writer then waits on each fetch. Here a thread reads inside its own transaction (a plain
    cursor, evaluated as fetched) on its own connection, so the database produces rows while
    Python encodes them. Inside the caller's transaction (tests) another connection could not
    see its rows, so the rows are read inline instead.
    """
    if connection.in_atomic_block:
        yield from rows()
        return
    chunks: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def hand_over(item) -> None:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            with transaction.atomic():
                chunk = []
                for row in rows():
                    chunk.append(row)
                    if len(chunk) == chunk_size:
                        hand_over(chunk)
                        chunk = []
                        if stop.is_set():
                            return
                hand_over(chunk)
            hand_over(_DONE)
        except BaseException as error:  # noqa: BLE001 - re-raised in the consumer
            hand_over(error)
        finally:
            connection.close()

    producer = threading.Thread(target=produce, name="export-prefetch", daemon=True)
    producer.start()
    try:
        while True:
            item = chunks.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield from item
    finally:
        stop.set()
        producer.join()


def comparison_counts(comparisons: QuerySet) -> tuple[int, dict[str, dict[str, int]]]:
    """(comparisons left out as chosen-unsafe-other-safe, exported comparisons by guideline, rating,
    safety bin, annotator and source).

    One GROUP BY over the comparison table alone, tallied here: the groups are few (guidelines x
    ratings x bins x annotators x sources), while a query per count with the joins to the
    annotators' profiles would scan the whole batch five times.
    """
    grouped = (
        comparisons.order_by()
        .values_list("guideline_kind", "rating", "safety_bin", "annotator_id", "source", "chosen_is_safe", "rejected_is_safe")
        .annotate(n=Count("id"))
    )
    excluded = 0
    tallies: dict[str, Counter] = {name: Counter() for name in ("guideline", "rating", "safety_bin", "annotator", "source")}
    by_annotator: Counter = Counter()
    for guideline, rating, safety_bin, annotator_id, source, chosen_is_safe, rejected_is_safe, n in grouped:
        if chosen_is_safe is False and rejected_is_safe is True:  # the rows exportable() leaves out
            excluded += n
            continue
        tallies["guideline"][guideline] += n
        tallies["rating"][rating or "unrated"] += n
        tallies["safety_bin"][safety_bin or "none"] += n
        tallies["source"][source] += n
        by_annotator[annotator_id] += n
    pseudonyms = dict(
        AnnotatorProfile.objects.filter(user_id__in=[key for key in by_annotator if key is not None]).values_list(
            "user_id", "pseudonym"
        )
    )
    for annotator_id, n in by_annotator.items():
        tallies["annotator"][pseudonyms.get(annotator_id) or "imported"] += n
    return excluded, {name: dict(sorted(tally.items())) for name, tally in tallies.items()}


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


class _ParquetSplit:
    """One split's Parquet file, fed row tuples and written a row group at a time from columns.

    Columns are built with pyarrow from plain lists (the assistant messages from their texts, with
    offsets) rather than from row dicts: converting dicts costs more than the rest of the export.
    """

    def __init__(self, path: Path, options: ExportOptions, split: str, background: _Background):
        self.path = path
        self.background = background
        self.writer = pq.ParquetWriter(path, PARQUET_SCHEMA, compression="zstd")
        self.constants = {"margin_table": options.margin_table, "batch": options.batch, "split": split}
        self.rows: list[tuple] = []

    # Order of the tuples given to add().
    FIELDS = (
        "prompt", "chosen", "rejected", "margin", "rating", "guideline", "chosen_is_safe", "rejected_is_safe",
        "safety_bin", "comparison_id", "item_id", "annotator", "chosen_model", "chosen_checkpoint",
        "chosen_sampling", "rejected_model", "rejected_checkpoint", "rejected_sampling", "source",
    )  # fmt: skip

    def add(self, row: tuple) -> None:
        self.rows.append(row)
        if len(self.rows) == PARQUET_ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        count = len(self.rows)
        columns = dict(zip(self.FIELDS, zip(*self.rows)))
        arrays = []
        for field in PARQUET_SCHEMA:
            if field.name == "prompt":
                arrays.append(_messages_array(columns["prompt"]))
            elif field.name in ("chosen", "rejected"):
                messages = pa.StructArray.from_arrays(
                    [pa.array(["assistant"] * count, pa.string()), pa.array(columns[field.name], pa.string())],
                    fields=list(_MESSAGE),
                )
                arrays.append(pa.ListArray.from_arrays(pa.array(range(count + 1), pa.int32()), messages))
            elif field.name in self.constants:
                arrays.append(pa.array([self.constants[field.name]] * count, field.type))
            else:
                arrays.append(pa.array(columns[field.name], field.type))
        # Compression and writing release the GIL: they run on the background thread.
        self.background.submit(self.writer.write_table, pa.Table.from_arrays(arrays, schema=PARQUET_SCHEMA), count)
        self.rows.clear()

    def close(self) -> None:
        self.flush()
        self.background.submit(self._close)

    def _close(self) -> None:
        self.writer.close()
        _fsync_path(self.path)


def _write_preferences(
    comparisons: QuerySet,
    folder: Path,
    options: ExportOptions,
    chunk_size: int,
    on_chunk: Callable[[int], None],
) -> dict:
    margins = MARGIN_TABLES[options.margin_table]
    # A count is drawn from the pairs not already declared test data.
    is_test = test_items(exportable(comparisons).exclude(split="test"), options)
    background = _Background()
    jsonl = {split: _HashingFile(folder / name, background) for split, name in zip(SPLITS, PREFERENCE_FILES)}
    hh = {split: _HashingFile(folder / name, background) for split, name in zip(SPLITS, HH_FILES)}
    parquet = {
        split: _ParquetSplit(folder / name, options, split, background) for split, name in zip(SPLITS, PARQUET_FILES)
    }
    dumps, loads, fragment = orjson.dumps, orjson.loads, orjson.Fragment
    newline, sort_keys = orjson.OPT_APPEND_NEWLINE, orjson.OPT_SORT_KEYS
    done = 0
    try:
        for (
            comparison_id,
            item_id,
            guideline,
            rating,
            chosen_is_safe,
            rejected_is_safe,
            safety_bin,
            source,
            turns_json,
            chosen_text,
            chosen_model,
            chosen_checkpoint,
            chosen_sampling_json,
            rejected_text,
            rejected_model,
            rejected_checkpoint,
            rejected_sampling_json,
            annotator,
            declared_split,
        ) in prefetched(lambda: comparison_rows(comparisons, chunk_size), chunk_size):
            prompt = loads(turns_json)
            # Sorted JSON text once: Parquet keeps it as text, the JSONL line embeds it as is.
            chosen_sampling = dumps(loads(chosen_sampling_json), option=sort_keys) if chosen_sampling_json else b"{}"
            rejected_sampling = dumps(loads(rejected_sampling_json), option=sort_keys) if rejected_sampling_json else b"{}"
            # A pair imported as test data stays in the test split whatever the hold-out says.
            split = "test" if declared_split == "test" or is_test(item_id) else "train"
            margin = margins.get(rating, 0.0)
            rating = rating or None
            safety_bin = safety_bin or None
            # Keys are written in sorted order, so the lines have the bytes of OPT_SORT_KEYS without
            # orjson sorting 22 keys a row; the prompt, parsed from the database, is sorted once.
            jsonl[split].add_line(
                dumps(
                    {
                        "annotator": annotator,
                        "batch": options.batch,
                        "chosen": [{"content": chosen_text, "role": "assistant"}],
                        "chosen_checkpoint": chosen_checkpoint,
                        "chosen_is_safe": chosen_is_safe,
                        "chosen_model": chosen_model,
                        "chosen_sampling": fragment(chosen_sampling),
                        "comparison_id": comparison_id,
                        "guideline": guideline,
                        "item_id": item_id,
                        "margin": margin,
                        "margin_table": options.margin_table,
                        "prompt": fragment(dumps(prompt, option=sort_keys)),
                        "rating": rating,
                        "rejected": [{"content": rejected_text, "role": "assistant"}],
                        "rejected_checkpoint": rejected_checkpoint,
                        "rejected_is_safe": rejected_is_safe,
                        "rejected_model": rejected_model,
                        "rejected_sampling": fragment(rejected_sampling),
                        "safety_bin": safety_bin,
                        "source": source,
                        "split": split,
                    },
                    option=newline,
                )
            )
            context = _transcript(prompt)
            hh[split].add_line(
                dumps(
                    {
                        "chosen": f"{context}\n\nAssistant: {chosen_text}",
                        "comparison_id": comparison_id,
                        "guideline": guideline,
                        "margin": margin,
                        "rejected": f"{context}\n\nAssistant: {rejected_text}",
                    },
                    option=newline,
                )
            )
            parquet[split].add(
                (
                    prompt, chosen_text, rejected_text, margin, rating, guideline, chosen_is_safe, rejected_is_safe,
                    safety_bin, comparison_id, item_id, annotator, chosen_model, chosen_checkpoint,
                    chosen_sampling.decode(), rejected_model, rejected_checkpoint, rejected_sampling.decode(), source,
                )
            )  # fmt: skip
            done += 1
            if done % chunk_size == 0:
                on_chunk(done)
        on_chunk(done)
    finally:
        try:
            for handle in (*jsonl.values(), *hh.values(), *parquet.values()):
                handle.close()
        finally:
            background.close()
    files = {}
    for split in SPLITS:
        for handle in (jsonl[split], hh[split]):
            files[handle.path.name] = {"rows": handle.rows, "sha256": handle.sha256.hexdigest()}
        files[parquet[split].path.name] = {"rows": jsonl[split].rows, "sha256": _file_sha256(parquet[split].path)}
    return files


_DEMONSTRATION_COLUMNS = ("id", "guideline_kind", "text", "source", "turns_json", "annotator__profile__pseudonym")


def _write_sft(demonstrations: QuerySet, folder: Path, options: ExportOptions, chunk_size: int) -> tuple[dict, dict]:
    background = _Background()
    out = _HashingFile(folder / SFT_FILE, background)
    by_guideline: Counter = Counter()
    rows = (
        demonstrations.annotate(turns_json=Cast(F("item__dialogue__turns"), TextField()))
        .order_by("id")
        .values_list(*_DEMONSTRATION_COLUMNS)
        .iterator(chunk_size=chunk_size)
    )
    try:
        for demonstration_id, guideline, text, source, turns_json, annotator in rows:
            messages = orjson.loads(turns_json)
            messages.append({"role": "assistant", "content": text})
            out.add_line(
                orjson.dumps(
                    {
                        "messages": messages,
                        "guideline": guideline,
                        "demonstration_id": demonstration_id,
                        "annotator": annotator,
                        "source": source,
                        "batch": options.batch,
                    },
                    option=_ORJSON_LINE,
                )
            )
            by_guideline[guideline] += 1
    finally:
        try:
            out.close()
        finally:
            background.close()
    return {SFT_FILE: {"rows": out.rows, "sha256": out.sha256.hexdigest()}}, dict(sorted(by_guideline.items()))


RETRACTED_FILE = "retracted.jsonl"


def _write_retracted(folder: Path, retracted: list[dict]) -> dict:
    """`retracted.jsonl`: comparisons of earlier batches that quality control excluded since they
    were exported; the training data loader drops them from every folder it reads."""
    lines = b"".join(orjson.dumps(entry, option=_ORJSON_LINE) for entry in retracted)
    (folder / RETRACTED_FILE).write_bytes(lines)
    _fsync_path(folder / RETRACTED_FILE)
    return {RETRACTED_FILE: {"rows": len(retracted), "sha256": hashlib.sha256(lines).hexdigest()}}


def _fsync_path(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _data_card(manifest: dict) -> str:
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
    return "\n".join(lines)


def _test_rule(options: ExportOptions) -> str:
    # Only an imported dataset (no batch) has pairs declared as test data.
    declared = "" if options.batch else "; pairs imported with --split test are always in the test split"
    if options.test_all:
        return "every comparison (--test-size all)"
    if options.test_size == 0:
        return "no hold-out" + declared
    return _hold_out_rule(options) + declared


def _hold_out_rule(options: ExportOptions) -> str:
    if options.test_size < 1:
        return f"items whose hash of the item id falls in the lowest {options.test_size:g} of the hash range"
    return (
        f"about {int(options.test_size)} comparisons (at most {options.test_max_fraction:g} of the batch),"
        " whole items taken in order of a hash of the item id"
    )


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while rows stream through.

    Every row allocates a few dicts and lists, which triggers collections that rescan the
    buffered row groups again and again (about a quarter of the export's time). Rows form no
    reference cycles, so reference counting frees them; the collector is restored afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def write_export(
    *,
    folder: Path,
    name: str,
    comparisons: QuerySet,
    demonstrations: QuerySet,
    options: ExportOptions,
    held_back: dict | None = None,
    retracted: list[dict] | None = None,
    chunk_size: int = 5000,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write every export file into `folder` (which must exist and be empty); returns the manifest.

    `held_back` counts what quality control left out of `comparisons` (gold answers, exclusions by
    reason); `retracted` lists comparisons of earlier batches to drop from training from now on.
    """
    excluded, counts = comparison_counts(comparisons)
    kept = sum(counts["guideline"].values())
    report = on_progress or (lambda done, total: None)
    report(0, kept)
    with _no_cyclic_gc():
        files = _write_preferences(comparisons, folder, options, chunk_size, lambda done: report(done, kept))
    counts["split"] = {split: files[name]["rows"] for split, name in zip(SPLITS, PREFERENCE_FILES)}
    sft_files, sft_counts = _write_sft(demonstrations, folder, options, chunk_size)
    files.update(sft_files)
    files.update(_write_retracted(folder, retracted or []))
    manifest = {
        "format_version": EXPORT_FORMAT_VERSION,
        "name": name,
        "batch": options.batch,
        "created": options.created,
        "code_version": options.code_version,
        "comparisons": kept,
        "demonstrations": sft_files[SFT_FILE]["rows"],
        "excluded_chosen_unsafe_other_safe": excluded,
        "held_back": held_back or {"gold": 0, "excluded": {}},
        "margin_table": options.margin_table,
        "margins": dict(MARGIN_TABLES[options.margin_table]),
        "test_split": {
            "test_size": "all" if options.test_all else options.test_size,
            "test_max_fraction": options.test_max_fraction,
            "rule": _test_rule(options),
        },
        "counts": counts,
        "demonstration_counts": {"guideline": sft_counts},
        "files": dict(sorted(files.items())),
    }
    (folder / "README.md").write_text(_data_card(manifest), encoding="utf-8")
    (folder / "manifest.json").write_bytes(orjson.dumps(manifest, option=_ORJSON_LINE | orjson.OPT_INDENT_2))
    for path in (folder / "README.md", folder / "manifest.json"):
        _fsync_path(path)
    return manifest


def remove_partial_exports(final: Path) -> None:
    """Remove folders a crashed export left beside `final` (never `final` itself)."""
    for stale in final.parent.glob(f".{final.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def atomic_folder(final: Path, *, replace: bool) -> Iterator[Path]:
    """Yield an empty folder beside `final`; rename it to `final` only if the block completes.

    A crash or an error leaves `final` as it was (absent, or the previous export when replacing).
    Replacing swaps the old folder aside first: the only instant without `final` is between two
    renames of the same directory.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not replace:
        raise ExportError(f"{final} already exists: choose another folder or remove it first.")
    partial = final.parent / f".{final.name}.partial-{uuid.uuid4().hex[:12]}"
    partial.mkdir()
    try:
        yield partial
        _fsync_path(partial)
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:12]}"
            os.rename(final, old)
        os.rename(partial, final)
        _fsync_path(final.parent)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
