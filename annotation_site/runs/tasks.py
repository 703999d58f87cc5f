"""Celery tasks of the runs app. `run_training` is routed to the "training" queue (settings'
CELERY_TASK_ROUTES), which only the GPU training worker consumes; the watchdog is named outside
that route so it runs on the ordinary workers even while the training worker is busy for hours."""
from __future__ import annotations

import os
import socket

from celery import shared_task

from annotation_site.runs import services


# acks_late and reject_on_worker_lost (settings) give the message back when the worker dies; the
# redelivered task finds the run stale and restarts or fails it (services.run_execute).
@shared_task(bind=True, name="annotation_site.runs.tasks.run_training", acks_late=True, reject_on_worker_lost=True)
def run_training(self, run_id: int) -> str:
    worker = f"{socket.gethostname()}:{os.getpid()}:{self.request.id or 'local'}"
    return services.run_execute(run_id=run_id, worker=worker)


@shared_task(name="annotation_site.runs.watchdog.runs_recover")
def runs_recover() -> list[int]:
    """Beat, every RUN_WATCHDOG_INTERVAL_S: restart or fail runs whose worker died; enqueue runs
    whose enqueue failed (broker down at launch)."""
    return services.runs_recover()
