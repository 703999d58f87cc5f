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


# What an annotator's browser does, run in a site process: the prompt's `items_need_samples` signal
# enqueues `fill_queue` from there, through the settings' routes, onto the workers' broker.
WRITE_A_PROMPT = (
    "from annotation_site.accounts.services import user_create\n"
    "from annotation_site.annotation.services import prompt_write\n"
    "user = user_create(username='ann', role='annotator', password='pw-123456')\n"
    "print(prompt_write(annotator=user, text='Plan a weekend in Porto', guideline_kind='helpfulness').pk)\n"
)


def wait_until_ready(item_id: int, workers, timeout: float):
    """Wait for the item's pair while every worker stays alive (a dead one fails with its log)."""
    import time

    from annotation_site.annotation.models import Item, ItemStatus

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Item.objects.get(pk=item_id).status != ItemStatus.READY:
        for worker in workers:
            assert worker.process.poll() is None, worker.log.read_text(errors="replace")[-3000:]
        time.sleep(0.5)

