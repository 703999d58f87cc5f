"""Celery tasks of the generation app: keep the annotation queue filled, watch deployments' health.

Tasks take ids, call one service and return a small report; retries live here.
"""
from __future__ import annotations

import logging
import os
import socket

from celery import shared_task
from django.conf import settings

from annotation_site.celery import serving_worker_queue
from annotation_site.generation import canary, services
from annotation_site.generation.models import Deployment

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    autoretry_for=(services.GenerationFailed,),
    retry_backoff=5,
    retry_backoff_max=settings.GENERATION_RETRY_BACKOFF_MAX_S,
    retry_jitter=True,
    max_retries=settings.GENERATION_TASK_MAX_RETRIES,
)
def fill_queue(self, item_ids: list[int] | None = None) -> dict:
    """Generate pairs for waiting items: the named ones first, then up to each guideline's target.

    Run by beat every GENERATION_FILL_INTERVAL_S and on `items_need_samples`. A deployment failure
    raises `GenerationFailed`, which Celery retries with exponential backoff (bounded retries).
    """
    worker = f"{socket.gethostname()}:{os.getpid()}:{self.request.id or 'local'}"
    report = services.queue_fill(worker=worker, item_ids=item_ids)
    if len(report.generated_item_ids) + len(report.selecting_item_ids) >= settings.GENERATION_BATCH_ITEMS:
        # A full batch went through and more may be wanted: continue now rather than at the next beat.
        fill_queue.delay()
    return report.as_dict()


@shared_task
def check_deployments_health() -> dict:
    """Re-check every enabled deployment, so one marked unhealthy comes back once it answers."""
    return services.deployments_check_health()


@shared_task(name="annotation_site.generation.tasks.select_pairs")
def select_pairs(item_ids: list[int]) -> dict:
    """On the training worker (it has the reward models): choose each item's pair among the
    candidates the fill stashed (active selection), and queue it."""
    return services.pairs_select(item_ids=item_ids)


@shared_task
def decide_canaries() -> dict:
    """Promote or roll back every running canary that has its votes (beat, every CANARY_DECIDE_INTERVAL_S)."""
    return canary.canaries_decide()


@shared_task
def check_deployment_health(deployment_id: int) -> dict:
    """One deployment's health check, asked for from the site (the web request never fetches URLs)."""
    deployment = Deployment.objects.select_related("checkpoint").filter(pk=deployment_id).first()
    if deployment is None:
        return {"deployment": deployment_id, "health": None}
    deployment = services.deployment_check_health(deployment=deployment)
    return {"deployment": deployment.pk, "health": deployment.health}


@shared_task(bind=True, name="annotation_site.generation.tasks.launch_deployment_server")
def launch_deployment_server(self, deployment_id: int, port: int | None = None, enforce_eager: bool = False) -> dict:
    """On a serving worker (the "serving" queue): start the deployment's vLLM server here. The
    worker's own queue is recorded so that the stop goes to this worker, the only one that can
    tell whether the stored pid is still the server."""
    deployment = Deployment.objects.select_related("checkpoint").get(pk=deployment_id)
    deployment = services.deployment_launch_server(
        deployment=deployment, queue=serving_worker_queue(self.request.hostname), port=port, enforce_eager=enforce_eager
    )
    return {"deployment": deployment.pk, "endpoint_url": deployment.endpoint_url}


@shared_task(name="annotation_site.generation.tasks.stop_deployment_server")
def stop_deployment_server(deployment_id: int) -> dict:
    """Sent to the queue of the serving worker that launched the server (never to "serving")."""
    deployment = Deployment.objects.get(pk=deployment_id)
    return {"deployment": deployment_id, "stopped": services.deployment_stop_launched_server(deployment=deployment)}


def enqueue_fill_for_items(sender, item_ids: list[int], **kwargs) -> None:
    """Receiver of `items_need_samples`: generate the new prompts' pairs ahead of the beat."""
    try:
        fill_queue.delay(item_ids=list(item_ids))
    except Exception:  # noqa: BLE001 - a broker outage must not fail the annotator's request
        # The items stay waiting with their priority; the next beat run generates them first.
        logger.exception("could not enqueue generation for items %s; beat will pick them up", item_ids)
