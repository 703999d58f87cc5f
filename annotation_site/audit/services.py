"""Recording the actions that are not a model save of their own, with who did them."""
from __future__ import annotations

from auditlog.models import LogEntry
from django.db import models


class AuditEvent(models.TextChoices):
    BATCH_CLOSE = "batch.close", "Batch closed"
    BATCH_REEXPORT = "batch.reexport", "Batch re-export requested"
    BATCH_EXPORT = "batch.export", "Batch exported"
    BATCH_EXPORT_COPY = "batch.export_copy", "Batch written to a folder"
    BATCH_DOWNLOAD = "batch.download", "Batch downloaded"
    RUN_LAUNCH = "run.launch", "Training run launched"
    RUN_CANCEL = "run.cancel", "Training run cancelled"
    QUALITY_EXCLUDE = "quality.exclude", "Comparison excluded from training"
    QUALITY_EXCLUDE_RANGE = "quality.exclude_range", "An annotator's comparisons excluded"
    QUALITY_REVIEW = "quality.review", "Flagged comparison reviewed"
    QUALITY_GOLD = "quality.gold", "Item marked gold"
    CANARY_START = "canary.start", "Canary deployment started"
    CANARY_PROMOTE = "canary.promote", "Canary promoted, its baseline disabled"
    CANARY_ROLLBACK = "canary.rollback", "Canary rolled back"


# Downloads read data; every other event changes something.
_ACTIONS = {AuditEvent.BATCH_DOWNLOAD: LogEntry.Action.ACCESS, AuditEvent.BATCH_EXPORT_COPY: LogEntry.Action.ACCESS}


def audit_record(*, event: AuditEvent, obj: models.Model, actor=None, **details) -> LogEntry:
    """One log entry for `event` on `obj` by `actor` (None: the system, e.g. beat or a worker).

    The event and its details go in auditlog's `additional_data`; the event is also the entry's
    change message, so the admin's list shows what happened. In a web request the actor defaults
    to the signed-in user (AuditlogActorMiddleware).
    """
    if actor is not None and not actor.is_authenticated:
        actor = None
    return LogEntry.objects.log_create(
        obj,
        force_log=True,
        action=_ACTIONS.get(event, LogEntry.Action.UPDATE),
        actor=actor,
        changes={"event": [None, event.value]},
        additional_data={"event": event.value, **details},
    )


def mask_secret(value: str) -> str:
    """Masks a password hash whole (auditlog's default mask keeps its second half)."""
    return "(hidden)"
