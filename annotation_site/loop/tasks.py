"""Celery tasks of the loop (default "celery" queue): they take ids and call one service."""
from __future__ import annotations

import logging

from celery import shared_task

from annotation_site.errors import ApplicationError
from annotation_site.loop.models import LoopDefinition, Trigger
from annotation_site.loop.services import iterations

logger = logging.getLogger(__name__)


@shared_task(name="annotation_site.loop.tasks.loop_advance")
def loop_advance(iteration_id: int) -> str | None:
    """A step's run ended (or an iteration started or was retried): move the iteration on."""
    return iterations.iteration_advance(iteration_id=iteration_id)


@shared_task(name="annotation_site.loop.tasks.loops_tick")
def loops_tick() -> dict:
    """Beat, every LOOP_TICK_INTERVAL_S: iterations triggered by a batch's export, and the engine's
    safety net (idempotent)."""
    return iterations.loops_tick()


@shared_task(name="annotation_site.loop.tasks.loop_start_scheduled")
def loop_start_scheduled(definition_id: int) -> int | None:
    """Beat, on a definition's own crontab (its trigger is a schedule)."""
    definition = LoopDefinition.objects.filter(pk=definition_id).first()
    if definition is None:
        return None
    try:
        return iterations.iteration_start(definition=definition, trigger=Trigger.SCHEDULE).pk
    except ApplicationError as error:
        logger.warning("loop %s: the scheduled iteration did not start: %s", definition.name, error.message)
        return None
