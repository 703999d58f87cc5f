"""Reads of batches and of what is waiting for one."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q, QuerySet

from annotation_site.annotation.models import Comparison, Demonstration
from annotation_site.batches.models import Batch, BatchState
from annotation_site.errors import NotFound


def batch_list() -> QuerySet[Batch]:
    return Batch.objects.order_by("-week")


def batch_get(key: str | int) -> Batch:
    """A batch by id or by week ("2026-W48")."""
    text = str(key).strip()
    batch = Batch.objects.filter(pk=int(text)).first() if text.isdigit() else Batch.objects.filter(week=text).first()
    if batch is None:
        raise NotFound(f'There is no batch "{text}": give its id or its week, e.g. 2026-W48.')
    return batch


def batch_is_open(*, batch_id: int | None) -> bool:
    """Whether rows of this batch (None: not yet in one) may still change.

    A batch exists only once its week is closed, and closed batches are immutable: only a row no
    batch has taken yet, which the next close will take, is open. Other apps ask here (amending a
    comparison does) rather than reading `batch_id` themselves.
    """
    return batch_id is None


def unbatched_counts() -> dict:
    """Platform comparisons and demonstrations waiting for the next batch."""
    return {
        "comparisons": Comparison.objects.filter(batch__isnull=True, source="annotation").count(),
        "demonstrations": Demonstration.objects.filter(batch__isnull=True, source="annotation").count(),
    }


@dataclass(frozen=True)
class ClosePlan:
    """What closing means now: the current week, whether it was closed early, and where (and when)
    the comparisons waiting now will be exported."""

    current_week: str
    closed_early: Batch | None  # the current week's batch, when an admin already closed it
    waiting_for_week: str  # the batch the waiting comparisons will go into
    waiting_closes_at: dt.datetime  # when the weekly schedule closes and exports that batch


def close_plan(*, now: dt.datetime) -> ClosePlan:
    """Where waiting comparisons go: this week's batch at its end, or, once this week was closed
    early, next week's batch at the end of next week (the weekly close of a week already closed
    takes nothing)."""
    from annotation_site.batches.services import week_bounds, week_of  # the week arithmetic lives there

    current = week_of(now)
    early = Batch.objects.filter(week=current).first()
    waiting_for = week_of(now + dt.timedelta(days=7)) if early else current
    return ClosePlan(current, early, waiting_for, week_bounds(waiting_for)[1])


def batches_needing_export(*, now: dt.datetime) -> QuerySet[Batch]:
    """Closed batches whose export never reached a worker, and exports whose worker went silent."""
    stale = now - dt.timedelta(seconds=settings.BATCH_EXPORT_STALE_AFTER_S)
    never_enqueued = Q(state=BatchState.CLOSED) & (Q(export_enqueued_at__isnull=True) | Q(export_enqueued_at__lt=stale))
    lost_worker = Q(state=BatchState.EXPORTING) & (
        Q(export_heartbeat_at__lt=stale) | Q(export_heartbeat_at__isnull=True, export_started_at__lt=stale)
    )
    return Batch.objects.filter(never_enqueued | lost_worker).order_by("week")


def source_names() -> list[str]:
    """Names of imported datasets (every comparison or demonstration source but the platform's own)."""
    names = set(Comparison.objects.exclude(source="annotation").values_list("source", flat=True).distinct())
    names |= set(Demonstration.objects.exclude(source="annotation").values_list("source", flat=True).distinct())
    return sorted(names)
