"""Celery tasks of the quality app. Reward-model scoring is routed to the "training" queue (settings'
CELERY_TASK_ROUTES): only the training worker has torch and the reward models' files."""
from __future__ import annotations

from celery import shared_task

from annotation_site.annotation.models import GuidelineKind
from annotation_site.quality import services


@shared_task(name="annotation_site.quality.tasks.reward_model_agreement_update")
def reward_model_agreement_update() -> dict[str, int]:
    """Beat, every QUALITY_RM_SCORE_INTERVAL_S: score new comparisons with each guideline's reward model."""
    return {kind: services.reward_model_agreement_update(guideline_kind=kind) for kind in GuidelineKind.values}


@shared_task(name="annotation_site.quality.tasks.flags_sync")
def flags_sync() -> int:
    """Beat, every QUALITY_FLAGS_INTERVAL_S: put newly flagged comparisons into the review queue."""
    return services.flags_sync()
