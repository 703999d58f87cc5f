"""The query side of an export: which comparisons and demonstrations go out, read as rows the
writers share, which side of the hold-out each falls on, and the counts of the manifest.

Rows are streamed from the database with `values_list(...).iterator(chunk_size=...)` (a server-side
cursor on PostgreSQL, read one chunk ahead in a thread) and parsed with orjson, so memory stays
flat however big the batch is. Everything is ordered by id, so the same rows come out in the same
order every time.
"""
from __future__ import annotations

import hashlib
import heapq
import queue
import threading
from collections import Counter
from typing import Callable, Iterator, NamedTuple

import orjson
from django.db import connection, transaction
from django.db.models import Count, F, QuerySet, TextField
from django.db.models.functions import Cast

from annotation_site.accounts.models import AnnotatorProfile
from annotation_site.batches.export.options import ExportOptions
from training.export_format import is_chosen_unsafe_other_safe, rating_margin


class ComparisonRow(NamedTuple):
    """One exported comparison, as every comparison writer reads it."""

    comparison_id: int
    item_id: int
    guideline: str
    rating: str | None
    margin: float
    chosen_is_safe: bool | None
    rejected_is_safe: bool | None
    safety_bin: str | None
    source: str
    prompt: list[dict]
    chosen_text: str
    chosen_model: str
    chosen_checkpoint: str | None
    # Sampling parameters as JSON text with sorted keys: Parquet keeps the text, JSONL embeds it.
    chosen_sampling_json: bytes
    rejected_text: str
    rejected_model: str
    rejected_checkpoint: str | None
    rejected_sampling_json: bytes
    annotator: str | None
    split: str


class DemonstrationRow(NamedTuple):
    """One exported demonstration, as every demonstration writer reads it."""

    demonstration_id: int
    guideline: str
    text: str
    source: str
    prompt: list[dict]
    annotator: str | None


def exportable(comparisons: QuerySet) -> QuerySet:
    """Leave out pairs whose chosen response is unsafe and the other safe (Llama 2, §3.2.2).

    The database refuses such rows already; the export filters them again so no import path or
    future constraint change can ever let one into a training file.
    """
    return comparisons.exclude(chosen_is_safe=False, rejected_is_safe=True)


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


def _comparison_tuples(comparisons: QuerySet, chunk_size: int) -> Iterator[tuple]:
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


def _sorted_json(text: str | None) -> bytes:
    # PostgreSQL's jsonb text orders keys by length first: sort them as the export does everywhere.
    return orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS) if text else b"{}"


def comparison_rows(comparisons: QuerySet, options: ExportOptions, chunk_size: int) -> Iterator[ComparisonRow]:
    """The exportable comparisons in id order, each with its split and margin."""
    # A count is drawn from the pairs not already declared test data.
    is_test = test_items(exportable(comparisons).exclude(split="test"), options)
    table = options.margin_table
    loads = orjson.loads
    for (
        comparison_id, item_id, guideline, rating, chosen_is_safe, rejected_is_safe, safety_bin, source, turns_json,
        chosen_text, chosen_model, chosen_checkpoint, chosen_sampling_json,
        rejected_text, rejected_model, rejected_checkpoint, rejected_sampling_json,
        annotator, declared_split,
    ) in prefetched(lambda: _comparison_tuples(comparisons, chunk_size), chunk_size):  # fmt: skip
        # Positional: a keyword call costs half a microsecond more, a second per million rows.
        yield ComparisonRow(
            comparison_id,
            item_id,
            guideline,
            rating or None,
            rating_margin(rating, table),
            chosen_is_safe,
            rejected_is_safe,
            safety_bin or None,
            source,
            loads(turns_json),
            chosen_text,
            chosen_model,
            chosen_checkpoint,
            _sorted_json(chosen_sampling_json),
            rejected_text,
            rejected_model,
            rejected_checkpoint,
            _sorted_json(rejected_sampling_json),
            annotator,
            # A pair imported as test data stays in the test split whatever the hold-out says.
            "test" if declared_split == "test" or is_test(item_id) else "train",
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


def demonstration_rows(demonstrations: QuerySet, chunk_size: int) -> Iterator[DemonstrationRow]:
    rows = (
        demonstrations.annotate(turns_json=Cast(F("item__dialogue__turns"), TextField()))
        .order_by("id")
        .values_list("id", "guideline_kind", "text", "source", "turns_json", "annotator__profile__pseudonym")
        .iterator(chunk_size=chunk_size)
    )
    for demonstration_id, guideline, text, source, turns_json, annotator in rows:
        yield DemonstrationRow(demonstration_id, guideline, text, source, orjson.loads(turns_json), annotator)


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
        if is_chosen_unsafe_other_safe(chosen_is_safe, rejected_is_safe):  # the rows exportable() leaves out
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


def demonstration_counts(demonstrations: QuerySet) -> dict[str, int]:
    """Exported demonstrations by guideline."""
    grouped = demonstrations.order_by().values_list("guideline_kind").annotate(n=Count("id")).order_by("guideline_kind")
    return dict(grouped)
