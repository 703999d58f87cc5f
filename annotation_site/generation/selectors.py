"""Reads of the generation domain: checkpoints, deployments, and how the queue filling stands."""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from annotation_site.annotation.models import GuidelineKind, ItemStatus
from annotation_site.annotation.selectors import items_needing_samples, ready_item_count
from annotation_site.generation.models import (
    Checkpoint,
    CheckpointKind,
    ClaimState,
    Deployment,
    GenerationClaim,
    Health,
)


def checkpoint_list() -> QuerySet[Checkpoint]:
    return Checkpoint.objects.select_related("parent").order_by("-created_at", "-id")


def deployment_list() -> QuerySet[Deployment]:
    return Deployment.objects.select_related("checkpoint").order_by("-created_at", "-id")


def deployments_for_generation() -> list[Deployment]:
    """Enabled deployments not known to be failing, of chat checkpoints, the newest checkpoint first.

    Deployments of unknown health are tried (a new deployment has not been checked yet); the
    health task brings unhealthy ones back once they answer again.
    """
    return list(
        Deployment.objects.select_related("checkpoint")
        .filter(enabled=True)
        .exclude(health=Health.UNHEALTHY)
        .exclude(checkpoint__kind=CheckpointKind.REWARD_MODEL)
        .order_by("-checkpoint__created_at", "-checkpoint_id", "id")
    )


def deployments_to_check() -> QuerySet[Deployment]:
    return Deployment.objects.select_related("checkpoint").filter(enabled=True)


@dataclass(frozen=True)
class GuidelineQueue:
    guideline_kind: str
    ready: int
    needs_samples: int
    generating: int
    failed: int
    target: int

    @property
    def short_by(self) -> int:
        return max(0, self.target - self.ready)


@dataclass(frozen=True)
class GenerationStatus:
    guidelines: list[GuidelineQueue]
    deployments_usable: int
    deployments_unhealthy: int


def generation_status(*, target: int) -> GenerationStatus:
    guidelines = []
    for kind in GuidelineKind.values:
        waiting = items_needing_samples(guideline_kind=kind)
        claims = GenerationClaim.objects.filter(item__guideline_kind=kind, item__status=ItemStatus.NEEDS_SAMPLES)
        guidelines.append(
            GuidelineQueue(
                guideline_kind=kind,
                ready=ready_item_count(guideline_kind=kind),
                needs_samples=waiting.count(),
                generating=claims.filter(state=ClaimState.GENERATING).count(),
                failed=claims.filter(state=ClaimState.FAILED).count(),
                target=target,
            )
        )
    return GenerationStatus(
        guidelines=guidelines,
        deployments_usable=len(deployments_for_generation()),
        deployments_unhealthy=Deployment.objects.filter(enabled=True, health=Health.UNHEALTHY).count(),
    )
