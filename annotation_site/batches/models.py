"""Weekly batches of comparisons and demonstrations, closed and exported exactly once."""
from __future__ import annotations

from django.db import models


class BatchState(models.TextChoices):
    CLOSED = "closed", "Closed, export pending"
    EXPORTING = "exporting", "Exporting"
    EXPORTED = "exported", "Exported"
    FAILED = "failed", "Export failed"


class Batch(models.Model):
    # ISO week the batch covers, e.g. "2026-W48".
    week = models.CharField(max_length=10, unique=True)
    state = models.CharField(max_length=12, choices=BatchState.choices, default=BatchState.CLOSED)
    closed_at = models.DateTimeField(auto_now_add=True)
    closed_early = models.BooleanField(default=False)
    # Comparisons and demonstrations created before this instant (and not in an earlier batch)
    # belong to the batch: the end of the ISO week, or the moment an admin closed it early.
    cutoff = models.DateTimeField(null=True, blank=True)
    # Export settings frozen at close time (margin table, hold-out size, code version), so every
    # later export of the batch writes the same bytes whatever the settings are by then.
    export_options = models.JSONField(default=dict, blank=True)
    export_attempts = models.PositiveIntegerField(default=0)
    export_enqueued_at = models.DateTimeField(null=True, blank=True)
    export_started_at = models.DateTimeField(null=True, blank=True)
    # Touched after every exported chunk; an EXPORTING batch whose heartbeat is old lost its worker.
    export_heartbeat_at = models.DateTimeField(null=True, blank=True)
    export_path = models.CharField(max_length=1000, blank=True, default="")
    export_progress = models.FloatField(default=0.0)
    export_error = models.TextField(blank=True, default="")
    exported_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-week"]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return f"Batch {self.week} ({self.state})"
