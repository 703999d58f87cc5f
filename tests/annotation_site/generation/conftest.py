import random

import pytest

from annotation_site.annotation.services import PromptSpec, prompts_queue
from annotation_site.generation.models import Checkpoint, Deployment
from tests.support.vllm_server import smollm2_vllm, tiny_vllm  # noqa: F401 (session fixtures)


@pytest.fixture(autouse=True)
def generation_settings(settings, tmp_path_factory):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The session's temporary folder holds the tiny models; paths outside it are refused.
    settings.CHECKPOINT_ROOTS = [str(tmp_path_factory.getbasetemp())]
    settings.GENERATION_READY_TARGET = 10
    settings.GENERATION_BATCH_ITEMS = 8
    settings.GENERATION_TEMPERATURES = ["0.7", "1.0", "1.2"]
    settings.GENERATION_MAX_TOKENS = 8
    settings.GENERATION_CLIENT_RETRIES = 0
    settings.GENERATION_REQUEST_TIMEOUT_S = 60
    settings.DEPLOYMENT_FAILURE_THRESHOLD = 3
    # Fill runs through the task (no rng passed) sample the random tiny model reproducibly.
    settings.GENERATION_SEED = 0
    return settings


@pytest.fixture
def rng():
    return random.Random(0)


def make_checkpoint(path, name="tiny-base", kind="base") -> Checkpoint:
    return Checkpoint.objects.create(name=name, path=str(path), kind=kind)


def deploy_local(path, name="tiny-base") -> Deployment:
    return Deployment.objects.create(checkpoint=make_checkpoint(path, name), engine="local")


def deploy_vllm(url, model, path="/nonexistent", name="served") -> Deployment:
    return Deployment.objects.create(
        checkpoint=make_checkpoint(path, name), engine="vllm", endpoint_url=url, served_model_name=model
    )


def queue_prompts(count: int, guideline_kind: str = "helpfulness", priority: int = 0, text: str = "Tell me about travel"):
    return prompts_queue(
        prompts=[
            PromptSpec(turns=[{"role": "user", "content": f"{text} {i}"}], guideline_kind=guideline_kind)
            for i in range(count)
        ],
        priority=priority,
    )
