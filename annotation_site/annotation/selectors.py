"""Reads of the annotation domain: queues, the current guideline, an annotator's progress."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from annotation_site.annotation.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    Demonstration,
    Guideline,
    Item,
    ItemStatus,
)


def items_needing_samples(*, guideline_kind: str | None = None) -> QuerySet[Item]:
    """Comparison items waiting for two samples, the most urgent first (docs/architecture.md, contract §1)."""
    items = Item.objects.filter(status=ItemStatus.NEEDS_SAMPLES).order_by("-priority", "id")
    if guideline_kind:
        items = items.filter(guideline_kind=guideline_kind)
    return items


def ready_item_count(*, guideline_kind: str | None = None) -> int:
    """Items annotators can claim now: ready and with a free slot (docs/architecture.md, contract §1)."""
    items = Item.objects.filter(status=ItemStatus.READY, open_slots__gt=0)
    if guideline_kind:
        items = items.filter(guideline_kind=guideline_kind)
    return items.count()


def guidelines_current_first(*, kind) -> QuerySet[Guideline]:
    """The active versions of a guideline kind, the current one (the newest) first; `kind` may be an
    OuterRef, for the claim that reads the current guideline of each item's kind."""
    return Guideline.objects.filter(kind=kind, is_active=True).order_by("-version")


def guideline_current(*, kind: str) -> Guideline | None:
    """The newest active version of a guideline kind, or None when none was written yet."""
    return guidelines_current_first(kind=kind).first()


def annotator_guideline_kinds(*, annotator, guideline_kind: str | None = None) -> list[str]:
    """The guideline kinds an annotator rates (their profile), narrowed to one kind if asked."""
    profile = getattr(annotator, "profile", None)
    kinds = list(profile.guideline_kinds) if profile is not None else ["helpfulness", "safety"]
    if guideline_kind:
        kinds = [kind for kind in kinds if kind == guideline_kind]
    return kinds


def claimable_items_for(*, annotator, guideline_kinds: list[str], task_kind: str | None = None) -> QuerySet[Item]:
    """Ready items with a free slot that this annotator has never been given, most urgent first."""
    items = Item.objects.filter(status=ItemStatus.READY, open_slots__gt=0, guideline_kind__in=guideline_kinds)
    if task_kind:
        items = items.filter(task_kind=task_kind)
    already_given = Assignment.objects.filter(item=OuterRef("pk"), annotator=annotator)
    return items.filter(~Exists(already_given)).order_by("-priority", "id")


def assignment_live_for(*, annotator, guideline_kinds: list[str], task_kind: str | None = None) -> Assignment | None:
    """The annotator's unexpired claim, so a reload shows the same item instead of taking another."""
    live = Assignment.objects.filter(
        annotator=annotator,
        status=AssignmentStatus.CLAIMED,
        expires_at__gt=timezone.now(),
        item__guideline_kind__in=guideline_kinds,
    )
    if task_kind:
        live = live.filter(item__task_kind=task_kind)
    # Usually there is none: find its id with a plain query, load the item and samples only if found.
    live_id = live.order_by("id").values_list("id", flat=True).first()
    return None if live_id is None else assignment_get_for(assignment_id=live_id, annotator=annotator)


def assignment_get_for(*, assignment_id: int, annotator) -> Assignment | None:
    """One of the annotator's own assignments; None for someone else's, so callers answer 404."""
    # Sliced rather than .first(): it is one row by primary key, and composing .first()'s ORDER BY
    # showed up in profiles of this hot path.
    found = Assignment.objects.select_related("item__dialogue", "item__sample_a", "item__sample_b", "guideline").filter(
        pk=assignment_id, annotator=annotator
    )[:1]
    return found[0] if found else None


def iso_week_start(now: dt.datetime) -> dt.datetime:
    """Monday 00:00 UTC of the ISO week containing `now`: quotas and batches are counted per ISO week."""
    now = now.astimezone(dt.timezone.utc)
    monday = now.date() - dt.timedelta(days=now.weekday())
    return dt.datetime.combine(monday, dt.time.min, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class Progress:
    week: str
    week_start: dt.datetime
    comparisons: int
    demonstrations: int
    quota: int

    @property
    def done(self) -> int:
        return self.comparisons + self.demonstrations

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.quota) if self.quota else 1.0


def annotator_progress(*, annotator, now: dt.datetime | None = None) -> Progress:
    """The annotator's work this ISO week against their weekly quota."""
    now = now or timezone.now()
    start = iso_week_start(now)
    end = start + dt.timedelta(days=7)
    year, week, _ = start.isocalendar()
    profile = getattr(annotator, "profile", None)
    return Progress(
        week=f"{year}-W{week:02d}",
        week_start=start,
        comparisons=Comparison.objects.filter(annotator=annotator, created_at__gte=start, created_at__lt=end).count(),
        demonstrations=Demonstration.objects.filter(
            annotator=annotator, created_at__gte=start, created_at__lt=end
        ).count(),
        quota=profile.weekly_quota if profile is not None else 0,
    )


# Counts shown to annotators stop here ("1000+"): counting a long queue on every request would
# cost more than the claim itself, and nobody needs the exact figure.
QUEUE_COUNT_CAP = 1000


@dataclass(frozen=True)
class QueueStatus:
    ready_for_you: int
    ready: int
    needs_samples: int
    cap: int = QUEUE_COUNT_CAP


def _capped_count(queryset) -> int:
    return queryset.values("pk")[:QUEUE_COUNT_CAP].count()


def queue_status(*, annotator, guideline_kind: str | None = None) -> QueueStatus:
    """What the annotator page polls while it waits: items ready for this annotator and being generated."""
    kinds = annotator_guideline_kinds(annotator=annotator, guideline_kind=guideline_kind)
    ready = Item.objects.filter(status=ItemStatus.READY, open_slots__gt=0, guideline_kind__in=kinds)
    return QueueStatus(
        ready_for_you=_capped_count(claimable_items_for(annotator=annotator, guideline_kinds=kinds)),
        ready=_capped_count(ready),
        needs_samples=_capped_count(Item.objects.filter(status=ItemStatus.NEEDS_SAMPLES, guideline_kind__in=kinds)),
    )


def comparison_get_for(*, comparison_id: int, annotator) -> Comparison | None:
    """One of the annotator's own comparisons; None for someone else's."""
    return (
        Comparison.objects.select_related("item__dialogue", "chosen")
        .filter(pk=comparison_id, annotator=annotator)
        .first()
    )
