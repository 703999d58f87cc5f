"""Writes comparisons and demonstrations as an exported batch folder (docs/export-format.md,
contract §2 of docs/architecture.md; the names are training/export_format.py's).

`rows` is the query (which rows, in which split, and the counts), `writers` one writer per file
format, `files` the machinery (files hashed as written, the background thread, the atomic folder).
Rows stream from the database once; every writer of their kind gets each row, and a background
thread writes, hashes and compresses beside the encoder, so memory stays flat however big the
batch is. Everything is ordered by id, keys are sorted and no clock is read, so exporting the same
rows with the same options writes the same bytes. The folder is written beside its final place
and renamed into place only once complete and fsynced: a crash never leaves a half batch.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from django.db.models import QuerySet

from annotation_site.batches.export import rows, writers
from annotation_site.batches.export.files import Background, ExportError, atomic_folder, remove_partial_exports
from annotation_site.batches.export.options import ExportOptions
from training.export_format import FORMAT_VERSION, MARGIN_TABLES, PREFERENCE_FILES, SFT_FILE, SPLITS

__all__ = ["ExportError", "ExportOptions", "atomic_folder", "remove_partial_exports", "write_export"]

# The formats of the folder. A new one is a writer in writers.py and one line here.
COMPARISON_WRITERS = (writers.PreferencesJsonl, writers.PreferencesParquet, writers.HhJsonl)
DEMONSTRATION_WRITERS = (writers.SftJsonl,)
RETRACTED_WRITERS = (writers.RetractedJsonl,)


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


def _write_rows(kinds: tuple, records, folder: Path, options: ExportOptions, on_row: Callable[[int], None]) -> dict:
    """Give every record to one writer of each kind; returns the manifest's entries of their files."""
    background = Background()
    opened = []
    try:
        opened = [kind(folder, options, background) for kind in kinds]
        adds = [writer.add for writer in opened]
        for done, record in enumerate(records, start=1):
            for add in adds:
                add(record)
            on_row(done)
    finally:
        try:
            for writer in opened:
                writer.close()
        finally:
            background.close()
    return {output.path.name: output.entry() for writer in opened for output in writer.outputs}


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
    excluded, counts = rows.comparison_counts(comparisons)
    kept = sum(counts["guideline"].values())
    report = on_progress or (lambda done, total: None)
    report(0, kept)

    def on_comparison(done: int) -> None:
        if done % chunk_size == 0:
            report(done, kept)

    with _no_cyclic_gc():
        files = _write_rows(
            COMPARISON_WRITERS, rows.comparison_rows(comparisons, options, chunk_size), folder, options, on_comparison
        )
    report(sum(files[PREFERENCE_FILES[split]]["rows"] for split in SPLITS), kept)
    demonstration_rows = rows.demonstration_rows(demonstrations, chunk_size)
    files.update(_write_rows(DEMONSTRATION_WRITERS, demonstration_rows, folder, options, lambda done: None))
    files.update(_write_rows(RETRACTED_WRITERS, retracted or [], folder, options, lambda done: None))
    counts["split"] = {split: files[PREFERENCE_FILES[split]]["rows"] for split in SPLITS}
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "batch": options.batch,
        "created": options.created,
        "code_version": options.code_version,
        "comparisons": kept,
        "demonstrations": files[SFT_FILE]["rows"],
        "excluded_chosen_unsafe_other_safe": excluded,
        "held_back": held_back or {"gold": 0, "excluded": {}},
        "margin_table": options.margin_table,
        "margins": dict(MARGIN_TABLES[options.margin_table]),
        "test_split": {
            "test_size": "all" if options.test_all else options.test_size,
            "test_max_fraction": options.test_max_fraction,
            "rule": options.test_rule(),
        },
        "counts": counts,
        "demonstration_counts": {"guideline": rows.demonstration_counts(demonstrations)},
        "files": dict(sorted(files.items())),
    }
    writers.write_data_card(folder, manifest)
    writers.write_manifest(folder, manifest)
    return manifest
