"""Closing weekly batches exactly once, and exporting them (and imported source datasets)."""
from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import subprocess
import time
from pathlib import Path
from typing import Callable

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from annotation_site.annotation.models import Comparison, Demonstration
from annotation_site.audit.services import AuditEvent, audit_record
from annotation_site.batches.export import ExportError, ExportOptions, atomic_folder, remove_partial_exports, write_export
from annotation_site.batches.models import Batch, BatchState
from annotation_site.errors import ApplicationError, Conflict, NotFound
from annotation_site.quality import selectors as quality
from training.export_format import RETRACTED_FILE

logger = logging.getLogger(__name__)

ANNOTATION_SOURCE = "annotation"
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def week_bounds(week: str) -> tuple[dt.datetime, dt.datetime]:
    """Start (Monday 00:00 UTC) and end (the next Monday 00:00 UTC) of an ISO week like "2026-W48"."""
    match = _WEEK.match(week or "")
    if not match:
        raise ApplicationError(f'"{week}" is not an ISO week: write it like 2026-W48.')
    try:
        monday = dt.date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError:
        raise ApplicationError(f'"{week}" is not an ISO week: {match[1]} has no week {match[2]}.') from None
    start = dt.datetime.combine(monday, dt.time(0), tzinfo=dt.timezone.utc)
    return start, start + dt.timedelta(days=7)


def week_of(moment: dt.datetime) -> str:
    year, week, _ = moment.astimezone(dt.timezone.utc).isocalendar()
    return f"{year}-W{week:02d}"


def previous_week(moment: dt.datetime) -> str:
    return week_of(moment - dt.timedelta(days=7))


@functools.cache
def code_version() -> str:
    """The platform's version for manifests: CODE_VERSION, else the checkout's git commit."""
    if settings.CODE_VERSION:
        return settings.CODE_VERSION
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def _options_from_settings(
    *, batch: str | None, created: str | None, test_size: float | None = None, test_all: bool = False
) -> ExportOptions:
    try:
        return ExportOptions(
            margin_table=settings.BATCH_MARGIN_TABLE,
            test_size=float(settings.BATCH_TEST_SIZE if test_size is None else test_size),
            test_all=test_all,
            test_max_fraction=float(settings.BATCH_TEST_MAX_FRACTION),
            code_version=code_version(),
            batch=batch,
            created=created,
        )
    except ExportError as error:
        raise ApplicationError(f"The export settings are invalid: {error}") from None


def batch_close(
    *, week: str | None = None, now: dt.datetime | None = None, enqueue_export: bool = True, actor=None
) -> tuple[Batch, bool]:
    """Close a week into one batch; returns (batch, created).

    Everything happens in one transaction: the batch row is inserted (its week is unique, so a
    second close of the same week, concurrent or later, finds it and changes nothing), then every
    platform comparison and demonstration not yet in a batch and created before the cutoff is
    assigned with one conditional UPDATE. Rows committed after that UPDATE stay unassigned and go to
    the next batch; concurrent UPDATEs never assign a row twice (`batch_id IS NULL` is rechecked
    under the row lock). Without a week, the current week is closed now (an early close). The
    export is enqueued on commit unless the caller exports it itself (`enqueue_export=False`).
    The close is recorded in the audit log with `actor` (None: the weekly schedule or a command).
    """
    now = now or timezone.now()
    week = week or week_of(now)
    start, end = week_bounds(week)
    if start > now:
        raise ApplicationError(f"Week {week} has not started yet; it cannot be closed.")
    with transaction.atomic():
        later = Batch.objects.filter(week__gt=week).order_by("week").values_list("week", flat=True).first()
        if later and not Batch.objects.filter(week=week).exists():
            raise Conflict(
                f"Batch {later} is already closed and took every earlier comparison; "
                f"week {week} cannot be closed after it."
            )
        cutoff = min(end, now)
        options = _options_from_settings(batch=week, created=None).as_dict()
        batch, created = Batch.objects.get_or_create(
            week=week, defaults={"cutoff": cutoff, "closed_early": cutoff < end, "export_options": options}
        )
        if not created:
            return batch, False
        assigned = Comparison.objects.filter(batch__isnull=True, source=ANNOTATION_SOURCE, created_at__lt=cutoff).update(
            batch=batch
        )
        demonstrations = Demonstration.objects.filter(
            batch__isnull=True, source=ANNOTATION_SOURCE, created_at__lt=cutoff
        ).update(batch=batch)
        batch.counts = {
            "comparisons": assigned,
            "demonstrations": demonstrations,
            "guideline": dict(
                batch.comparisons.values_list("guideline_kind").annotate(n=Count("id")).order_by("guideline_kind")
            ),
        }
        batch.save(update_fields=["counts"])
        audit_record(event=AuditEvent.BATCH_CLOSE, obj=batch, actor=actor, counts=batch.counts, early=batch.closed_early)
        if enqueue_export:
            batch_id = batch.id
            transaction.on_commit(lambda: batch_export_enqueue(batch_id=batch_id))
    logger.info("closed batch %s: %d comparisons, %d demonstrations", week, assigned, demonstrations)
    return batch, True


def batch_export_enqueue(*, batch_id: int, force: bool = False) -> bool:
    """Hand the export to a worker; with the broker down, record why and leave it to the watchdog.

    Never raises for a broker outage: closing a batch (and annotators' work) must not fail because
    Redis is away. `batch_exports_resume` (beat, every few minutes) enqueues it again.
    """
    from annotation_site.batches.tasks import batch_export

    try:
        batch_export.delay(batch_id, force=force)
    except (BrokerError, OSError) as error:
        logger.warning("could not enqueue the export of batch %s: %s", batch_id, error)
        Batch.objects.filter(pk=batch_id).update(
            export_error=f"Could not reach the task broker to start the export ({error}); "
            "it is retried automatically every few minutes."
        )
        return False
    Batch.objects.filter(pk=batch_id).update(export_enqueued_at=timezone.now())
    return True


def batch_reexport(*, batch: Batch, actor=None) -> Batch:
    """Write a batch's folder again (same bytes); refused while an export of it is running."""
    if batch.state == BatchState.EXPORTING and not batch_export_is_stale(batch):
        raise Conflict(f"Batch {batch.week} is being exported right now; wait for it to finish.")
    audit_record(event=AuditEvent.BATCH_REEXPORT, obj=batch, actor=actor)
    batch_export_enqueue(batch_id=batch.id, force=True)
    batch.refresh_from_db()
    return batch


def batch_export_is_stale(batch: Batch, *, now: dt.datetime | None = None) -> bool:
    now = now or timezone.now()
    heartbeat = batch.export_heartbeat_at or batch.export_started_at
    return heartbeat is None or (now - heartbeat).total_seconds() > settings.BATCH_EXPORT_STALE_AFTER_S


def batch_folder(batch: Batch) -> Path:
    return Path(settings.EXPORT_ROOT) / batch.week


def _batch_options(batch: Batch) -> ExportOptions:
    stored = dict(batch.export_options or {})
    if not stored:  # batches closed before options were frozen
        stored = _options_from_settings(batch=None, created=None).as_dict()
    stored.update(batch=batch.week, created=batch.closed_at.astimezone(dt.timezone.utc).isoformat())
    return ExportOptions.from_dict(stored)


class ExportSuperseded(Conflict):
    """A newer export attempt of the same batch took over; this one's result is not recorded."""


def _progress_recorder(batch_id: int, attempt: int, on_progress: Callable[[int, int], None] | None):
    pause = settings.BATCH_EXPORT_PAUSE_PER_CHUNK_S

    def record(done: int, total: int) -> None:
        Batch.objects.filter(pk=batch_id, export_attempts=attempt).update(
            export_progress=(done / total) if total else 1.0, export_heartbeat_at=timezone.now()
        )
        if on_progress:
            on_progress(done, total)
        if pause and done < total:
            time.sleep(pause)

    return record


def _write_batch(batch: Batch, folder: Path, on_progress) -> dict:
    # Quality control: gold answers and comparisons excluded before the close stay out (counted in
    # the manifest); exclusions of earlier batches' comparisons made since are listed (retracted).
    in_batch = Comparison.objects.filter(batch=batch)
    return write_export(
        folder=folder,
        name=batch.week,
        comparisons=quality.training_comparisons(in_batch, excluded_before=batch.closed_at),
        held_back=quality.held_back_counts(in_batch, excluded_before=batch.closed_at),
        retracted=quality.retracted_by(batch),
        demonstrations=Demonstration.objects.filter(batch=batch),
        options=_batch_options(batch),
        chunk_size=settings.BATCH_EXPORT_CHUNK_SIZE,
        on_progress=on_progress,
    )


def batch_export(
    *, batch_id: int, force: bool = False, on_progress: Callable[[int, int], None] | None = None
) -> Batch:
    """Export a closed batch into EXPORT_ROOT/<week>, atomically; safe to run again after a crash.

    An already exported batch is left alone unless `force` (a re-export, which writes the same
    bytes). Each run claims the export with a new attempt number; only the latest attempt
    records progress and the outcome, and it removes what crashed attempts left beside the final
    folder. An older attempt still running (a redelivered task) raises ExportSuperseded at its end.
    """
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(pk=batch_id).first()
        if batch is None:
            raise NotFound(f"There is no batch with id {batch_id}.")
        final = batch_folder(batch)
        if batch.state == BatchState.EXPORTED and final.is_dir() and not force:
            return batch
        now = timezone.now()
        batch.state = BatchState.EXPORTING
        batch.export_attempts += 1
        batch.export_started_at = now
        batch.export_heartbeat_at = now
        batch.export_progress = 0.0
        batch.export_error = ""
        batch.save(
            update_fields=[
                "state",
                "export_attempts",
                "export_started_at",
                "export_heartbeat_at",
                "export_progress",
                "export_error",
            ]
        )
    attempt = batch.export_attempts
    current = Batch.objects.filter(pk=batch.id, export_attempts=attempt)
    superseded = f"A newer export of batch {batch.week} took over from attempt {attempt}."
    remove_partial_exports(final)
    try:
        with atomic_folder(final, replace=True) as folder:
            manifest = _write_batch(batch, folder, _progress_recorder(batch.id, attempt, on_progress))
    except Exception as error:
        if not current.update(state=BatchState.FAILED, export_error=f"{type(error).__name__}: {error}"):
            raise ExportSuperseded(superseded) from error
        raise
    counts = {
        "comparisons": manifest["comparisons"],
        "demonstrations": manifest["demonstrations"],
        "excluded_chosen_unsafe_other_safe": manifest["excluded_chosen_unsafe_other_safe"],
        # Quality control: answers on gold items and excluded comparisons left out (by reason in
        # the manifest), and earlier batches' comparisons this batch retracts.
        "held_back_gold": manifest["held_back"]["gold"],
        "held_back_excluded": sum(manifest["held_back"]["excluded"].values()),
        "retracted": manifest["files"][RETRACTED_FILE]["rows"],
        **manifest["counts"],
    }
    finished = current.update(
        state=BatchState.EXPORTED,
        export_path=str(final),
        export_progress=1.0,
        exported_at=timezone.now(),
        counts=counts,
    )
    if not finished:
        raise ExportSuperseded(superseded)
    batch.refresh_from_db()
    audit_record(event=AuditEvent.BATCH_EXPORT, obj=batch, path=str(final), attempt=attempt, counts=counts)
    logger.info("exported batch %s to %s", batch.week, final)
    return batch


def batch_write_copy(*, batch: Batch, out_dir: Path, on_progress=None) -> dict:
    """Write an existing batch into a new folder (byte-identical to its export); returns the manifest."""
    try:
        with atomic_folder(Path(out_dir), replace=False) as folder:
            manifest = _write_batch(batch, folder, on_progress)
    except ExportError as error:
        raise ApplicationError(str(error)) from None
    audit_record(event=AuditEvent.BATCH_EXPORT_COPY, obj=batch, path=str(out_dir))
    return manifest


def source_export(*, name: str, out_dir: Path, test_size: float | str = 0, on_progress=None) -> dict:
    """Write an imported dataset (comparisons and demonstrations whose source is `name`) as a batch folder.

    An imported dataset keeps the split it was imported with: pairs imported with `--split test`
    are the test split, the rest train. `test_size` holds out more of the training pairs, as a
    batch would (a count >= 1 or a fraction), or "all" puts every pair in the test split; the
    default 0 holds out nothing more (the weekly batches' BATCH_TEST_SIZE does not apply here).
    """
    if name == ANNOTATION_SOURCE:
        raise ApplicationError('"annotation" is the platform\'s own data: export it by batch with export_batch.')
    all_comparisons = Comparison.objects.filter(source=name)
    comparisons = quality.training_comparisons(all_comparisons)
    demonstrations = Demonstration.objects.filter(source=name)
    if not all_comparisons.exists() and not demonstrations.exists():
        from annotation_site.batches.selectors import source_names

        known = ", ".join(source_names()) or "none imported yet"
        raise NotFound(f'There is no imported dataset named "{name}" (known: {known}).')
    test_all = test_size == "all"
    if isinstance(test_size, str) and not test_all:
        try:
            test_size = float(test_size)
        except ValueError:
            raise ApplicationError(f"--test-size {test_size!r} is not a count, a fraction, 0 or all.") from None
    options = _options_from_settings(batch=None, created=None, test_size=0 if test_all else test_size, test_all=test_all)
    try:
        with atomic_folder(Path(out_dir), replace=False) as folder:
            return write_export(
                folder=folder,
                name=name,
                comparisons=comparisons,
                held_back=quality.held_back_counts(all_comparisons),
                demonstrations=demonstrations,
                options=options,
                chunk_size=settings.BATCH_EXPORT_CHUNK_SIZE,
                on_progress=on_progress,
            )
    except ExportError as error:
        raise ApplicationError(str(error)) from None


def batch_exports_resume(*, now: dt.datetime | None = None) -> list[int]:
    """Enqueue exports that never reached a worker (broker was down) or whose worker died."""
    from annotation_site.batches.selectors import batches_needing_export

    resumed = []
    for batch in batches_needing_export(now=now or timezone.now()):
        if batch_export_enqueue(batch_id=batch.id):
            resumed.append(batch.id)
    return resumed
