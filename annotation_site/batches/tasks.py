"""Celery tasks of the batches app: they take ids, call one service, and own retries."""
from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from annotation_site.batches import services
from annotation_site.errors import NotFound

logger = logging.getLogger(__name__)

EXPORT_MAX_RETRIES = 3


@shared_task(name="annotation_site.batches.tasks.batch_close_weekly")
def batch_close_weekly() -> int:
    """Beat, Monday 00:00 UTC: close the ISO week that just ended (a no-op if already closed)."""
    batch, created = services.batch_close(week=services.previous_week(timezone.now()))
    if not created:
        logger.info("batch %s was already closed", batch.week)
    return batch.id


# acks_late and reject_on_worker_lost come from settings: a worker killed mid-export gives the
# task back to the broker, and the export (atomic, deterministic) simply runs again.
@shared_task(bind=True, name="annotation_site.batches.tasks.batch_export", max_retries=EXPORT_MAX_RETRIES)
def batch_export(self, batch_id: int, force: bool = False) -> str:
    try:
        batch = services.batch_export(batch_id=batch_id, force=force)
    except NotFound:
        logger.error("batch %s no longer exists; nothing to export", batch_id)
        return ""
    except services.ExportSuperseded as superseded:
        # A newer attempt (a redelivered or re-enqueued task) owns the export now; retrying would
        # only take it back from that one.
        logger.warning("%s", superseded)
        return ""
    except Exception as error:
        # The service marked the batch FAILED with the error; retry with back-off, and after the
        # last retry it stays FAILED for an admin to see and re-export.
        raise self.retry(exc=error, countdown=30 * (2**self.request.retries))
    return batch.export_path


@shared_task(name="annotation_site.batches.tasks.batch_exports_resume")
def batch_exports_resume() -> list[int]:
    """Beat, every few minutes: the watchdog for exports lost to a broker outage or a dead worker."""
    return services.batch_exports_resume()
