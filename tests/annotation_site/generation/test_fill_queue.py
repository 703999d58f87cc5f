"""Filling the annotation queue: claiming, the sampling policy, storing pairs, and failures.

The local engine on the tiny random Llama stands in as the working engine (it is part of the
system); broken peers are a checkpoint folder that does not load and misbehaving HTTP servers.
"""
import shutil

import pytest

from annotation_site.accounts.services import user_create
from annotation_site.annotation.models import Item, ItemStatus, Sample
from annotation_site.annotation.services import prompt_write
from annotation_site.generation import services
from annotation_site.generation.services import filling
from annotation_site.generation.models import ClaimState, GenerationClaim, Health
from annotation_site.generation.tasks import check_deployments_health, fill_queue
from tests.annotation_site.generation.conftest import deploy_local, deploy_vllm, make_checkpoint, queue_prompts
from tests.support.vllm_server import MisbehavingServer, completion_body, refusing_base_url

pytestmark = pytest.mark.django_db

SAMPLING_KEYS = {"temperature", "top_p", "max_tokens", "n", "seed", "stop", "engine", "model", "deployment"}


def _samples(item):
    item.refresh_from_db()
    return item.sample_a, item.sample_b


def test_waiting_prompts_get_two_samples_from_one_checkpoint_at_two_temperatures(tiny_model_dir, rng):
    deployment = deploy_local(tiny_model_dir)
    items = queue_prompts(3)
    report = services.queue_fill(worker="w1", rng=rng)
    assert sorted(report.generated_item_ids) == sorted(item.pk for item in items)
    for item in items:
        item.refresh_from_db()
        assert item.status == ItemStatus.READY and item.open_slots == item.overlap
        a, b = _samples(item)
        assert a.checkpoint == b.checkpoint == deployment.checkpoint
        assert a.sampling_params["temperature"] != b.sampling_params["temperature"]
        for sample in (a, b):
            assert set(sample.sampling_params) == SAMPLING_KEYS
            assert sample.sampling_params["max_tokens"] == 8 and sample.sampling_params["engine"] == "local"
            assert sample.dialogue_id == item.dialogue_id and sample.model_name == "tiny-base"
            assert sample.text.strip() and sample.finish_reason in ("stop", "length")
            assert sample.prompt_tokens > 0 and 0 < sample.completion_tokens <= 8 and sample.latency_ms > 0
    assert not GenerationClaim.objects.exists()


def test_two_deployed_checkpoints_answer_one_side_each(tiny_model_dir, rng):
    first, second = deploy_local(tiny_model_dir, "sft-1"), deploy_local(tiny_model_dir, "sft-2")
    (item,) = queue_prompts(1)
    services.queue_fill(worker="w1", rng=rng)
    a, b = _samples(item)
    assert {a.checkpoint_id, b.checkpoint_id} == {first.checkpoint_id, second.checkpoint_id}
    assert a.sampling_params["temperature"] != b.sampling_params["temperature"]


def test_an_annotator_written_prompt_is_generated_before_the_pool(tiny_model_dir, rng, settings):
    settings.GENERATION_BATCH_ITEMS = 1
    deploy_local(tiny_model_dir)
    (pool_item,) = queue_prompts(1)
    annotator = user_create(username="ann", role="annotator", password="pw-123456")
    written = prompt_write(annotator=annotator, text="What should I cook tonight?", guideline_kind="helpfulness")
    report = services.queue_fill(worker="w1", rng=rng)
    assert report.generated_item_ids == [written.pk]
    pool_item.refresh_from_db()
    assert pool_item.status == ItemStatus.NEEDS_SAMPLES


def test_the_signal_of_a_new_prompt_generates_its_pair_at_once(
    tiny_model_dir, settings, celery_eager, django_capture_on_commit_callbacks
):
    settings.GENERATION_READY_TARGET = 0  # the target is met: only the signal asks for this item
    deploy_local(tiny_model_dir)
    annotator = user_create(username="ann", role="annotator", password="pw-123456")
    with django_capture_on_commit_callbacks(execute=True):
        item = prompt_write(annotator=annotator, text="Plan a trip to Lisbon", guideline_kind="safety")
    item.refresh_from_db()
    assert item.status == ItemStatus.READY and item.sample_a.text.strip()


def test_generation_stops_at_the_ready_target_and_reports_a_short_pool(tiny_model_dir, rng, settings):
    settings.GENERATION_READY_TARGET = 2
    deploy_local(tiny_model_dir)
    queue_prompts(5)
    report = services.queue_fill(worker="w1", rng=rng)
    assert len(report.generated_item_ids) == 2
    assert Item.objects.filter(status=ItemStatus.NEEDS_SAMPLES).count() == 3
    assert report.short_of_prompts == {"safety": 2}  # no safety prompt waits; none are invented


def test_without_a_usable_deployment_nothing_is_claimed(rng):
    (item,) = queue_prompts(1)
    report = services.queue_fill(worker="w1", rng=rng)
    assert report.no_deployment and not report.generated_item_ids
    assert not GenerationClaim.objects.exists()


def test_two_workers_never_claim_the_same_item():
    items = queue_prompts(5)
    first = services.items_claim_for_generation(worker="w1", limit=3)
    second = services.items_claim_for_generation(worker="w2", limit=3)
    assert [item.pk for item in first] == [item.pk for item in items[:3]]
    assert [item.pk for item in second] == [item.pk for item in items[3:]]
    assert services.items_claim_for_generation(worker="w3", limit=3) == []


def test_an_expired_claim_is_taken_over_and_a_failed_one_is_not(settings):
    a, b = queue_prompts(2)
    services.items_claim_for_generation(worker="dead", limit=2)
    GenerationClaim.objects.filter(item=a).update(expires_at="2000-01-01T00:00Z", attempts=2)
    GenerationClaim.objects.filter(item=b).update(expires_at="2000-01-01T00:00Z", state=ClaimState.FAILED)
    assert services.items_claim_for_generation(worker="w2", limit=5) == [a]
    claim = GenerationClaim.objects.get(item=a)
    assert (claim.worker, claim.attempts) == ("w2", 2)


def _broken_copy(tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").unlink()
    return broken


def test_a_failing_deployment_stores_nothing_and_becomes_unhealthy_after_repeated_failures(tiny_model_dir, tmp_path, rng):
    deployment = deploy_local(_broken_copy(tiny_model_dir, tmp_path))
    items = queue_prompts(2)
    for failures in (1, 2, 3):
        with pytest.raises(services.GenerationFailed) as failed:
            services.queue_fill(worker="w1", rng=rng)
        deployment.refresh_from_db()
        assert deployment.consecutive_failures == failures
        assert sorted(failed.value.report.released_item_ids) == sorted(item.pk for item in items)
    assert deployment.health == Health.UNHEALTHY and "tiny-base" in deployment.last_error
    assert not Sample.objects.exists()
    assert Item.objects.filter(status=ItemStatus.NEEDS_SAMPLES).count() == 2
    assert services.queue_fill(worker="w1", rng=rng).no_deployment


def test_the_task_retries_until_the_failing_deployment_is_left_out(tiny_model_dir, tmp_path, settings):
    deployment = deploy_local(_broken_copy(tiny_model_dir, tmp_path))
    queue_prompts(1)
    result = fill_queue.apply()
    # Tries 1-3 fail (Celery retries them); by try 4 the deployment is unhealthy and left out.
    assert result.successful() and result.result["no_deployment"]
    deployment.refresh_from_db()
    assert (deployment.consecutive_failures, deployment.health) == (3, Health.UNHEALTHY)


def test_a_working_deployment_takes_over_from_a_failing_one(tiny_model_dir, tmp_path, settings):
    settings.GENERATION_LATEST_CHECKPOINTS = 1  # only the newest checkpoint (the broken one) is used
    deploy_local(tiny_model_dir, "older")
    broken = deploy_local(_broken_copy(tiny_model_dir, tmp_path), "newer")
    (item,) = queue_prompts(1)
    result = fill_queue.apply()
    assert result.successful() and result.result["generated_item_ids"] == [item.pk]
    broken.refresh_from_db()
    assert broken.health == Health.UNHEALTHY
    a, b = _samples(item)
    assert a.model_name == b.model_name == "older"


@pytest.mark.parametrize("behaviour", ["garbage", "no_choices", "empty_text", "server_error"])
def test_malformed_or_empty_answers_store_nothing_and_count_against_the_deployment(behaviour, rng):
    with MisbehavingServer(behaviour) as peer:
        deployment = deploy_vllm(peer.base_url, "m")
        items = queue_prompts(2)
        with pytest.raises(services.GenerationFailed):
            services.queue_fill(worker="w1", rng=rng)
    deployment.refresh_from_db()
    assert deployment.consecutive_failures == 1 and deployment.last_error
    assert not Sample.objects.exists()
    assert all(Item.objects.get(pk=item.pk).status == ItemStatus.NEEDS_SAMPLES for item in items)
    # Released at once: the next run may claim them again.
    assert len(services.items_claim_for_generation(worker="w2", limit=5)) == 2


@pytest.mark.parametrize(
    "behaviour, answer, stored, cleaned_chars",
    [
        ("texts", ["NUL\x00 and escape\x1b from a model\r\n"], "NUL and escape from a model\n", 3),
        ("texts", ["a lone \ud800 surrogate"], "a lone \ufffd surrogate", 1),
        ("raw", completion_body(["not utf-8: BAD"]).replace(b"BAD", b"\xff"), "not utf-8: \ufffd", 1),
    ],
    ids=["controls", "lone-surrogate", "invalid-utf8"],
)
def test_text_postgres_cannot_take_is_stored_cleaned_with_the_count(postgres, behaviour, answer, stored, cleaned_chars, rng):
    peer = MisbehavingServer(behaviour, texts=answer) if behaviour == "texts" else MisbehavingServer(behaviour, body=answer)
    with peer:
        deploy_vllm(peer.base_url, "m")
        (item,) = queue_prompts(1)
        assert services.queue_fill(worker="w1", rng=rng).generated_item_ids == [item.pk]
    for sample in _samples(item):
        sample.refresh_from_db()
        assert (sample.text, sample.cleaned_chars) == (stored, cleaned_chars)


def test_a_clean_answer_is_stored_as_sent_with_nothing_counted(rng):
    with MisbehavingServer("ok") as peer:
        deploy_vllm(peer.base_url, "m")
        (item,) = queue_prompts(1)
        services.queue_fill(worker="w1", rng=rng)
    assert [(s.text, s.cleaned_chars) for s in _samples(item)] == [("A fine answer.", 0)] * 2


@pytest.mark.parametrize("answer", [" \n\t ", "\x00\r\n"])
def test_a_whitespace_only_answer_is_not_stored_and_the_item_is_retried(answer, rng):
    with MisbehavingServer("texts", texts=[answer]) as peer:
        deployment = deploy_vllm(peer.base_url, "m")
        (item,) = queue_prompts(1)
        with pytest.raises(services.GenerationFailed, match="empty"):
            services.queue_fill(worker="w1", rng=rng)
    deployment.refresh_from_db()
    assert deployment.consecutive_failures == 1 and not Sample.objects.exists()
    assert [i.pk for i in services.items_claim_for_generation(worker="w2", limit=5)] == [item.pk]


def test_a_timeout_stores_nothing_and_counts_against_the_deployment(rng, settings):
    settings.GENERATION_REQUEST_TIMEOUT_S = 0.5
    with MisbehavingServer("slow", delay_s=3) as peer:
        deployment = deploy_vllm(peer.base_url, "m")
        queue_prompts(1)
        with pytest.raises(services.GenerationFailed, match="EngineTimeout"):
            services.queue_fill(worker="w1", rng=rng)
    deployment.refresh_from_db()
    assert deployment.consecutive_failures == 1 and not Sample.objects.exists()


def test_a_server_down_at_start_stores_nothing_and_counts_against_the_deployment(rng):
    with refusing_base_url() as url:
        deployment = deploy_vllm(url, "m")
        queue_prompts(1)
        with pytest.raises(services.GenerationFailed, match="EngineUnavailable"):
            services.queue_fill(worker="w1", rng=rng)
    deployment.refresh_from_db()
    assert deployment.consecutive_failures == 1 and not Sample.objects.exists()


def test_a_prompt_the_server_refuses_fails_alone_after_a_few_attempts(rng, settings):
    settings.GENERATION_ITEM_MAX_ATTEMPTS = 2
    with MisbehavingServer("bad_request") as peer:
        deployment = deploy_vllm(peer.base_url, "m")
        (item,) = queue_prompts(1)
        assert services.queue_fill(worker="w1", rng=rng).released_item_ids == [item.pk]
        assert services.queue_fill(worker="w1", rng=rng).failed_item_ids == [item.pk]
        assert services.queue_fill(worker="w1", rng=rng).generated_item_ids == []
    claim = GenerationClaim.objects.get(item=item)
    assert claim.state == ClaimState.FAILED and "maximum context" in claim.last_error
    deployment.refresh_from_db()
    assert deployment.health == Health.HEALTHY and deployment.consecutive_failures == 0


def test_the_health_task_brings_an_unhealthy_deployment_back_when_it_answers():
    with MisbehavingServer("ok", model="m") as peer, refusing_base_url() as dead_url:
        deployment = deploy_vllm(peer.base_url, "m")
        deployment.health, deployment.consecutive_failures = Health.UNHEALTHY, 3
        deployment.save()
        dead = deploy_vllm(dead_url, "m", name="dead")
        assert check_deployments_health.apply().get() == {"healthy": 1, "unhealthy": 1}
    deployment.refresh_from_db()
    dead.refresh_from_db()
    assert (deployment.health, deployment.consecutive_failures) == (Health.HEALTHY, 0)
    assert dead.health == Health.UNHEALTHY and dead.last_error == "No OpenAI-compatible server serving m answered at this URL."


def test_a_reward_model_is_never_asked_to_generate(tiny_model_dir):
    from annotation_site.errors import ApplicationError

    with pytest.raises(ApplicationError, match="reward model"):
        services.deployment_create(checkpoint=make_checkpoint(tiny_model_dir, "rm", kind="reward_model"), engine="local")


def test_a_dialogue_that_is_not_a_chat_fails_alone_and_the_others_are_generated(tiny_model_dir, rng, settings):
    settings.GENERATION_ITEM_MAX_ATTEMPTS = 1
    deploy_local(tiny_model_dir)
    good, bad = queue_prompts(2)
    bad.dialogue.turns = bad.dialogue.turns + [{"role": "assistant", "content": "an answer already"}]
    bad.dialogue.save()
    report = services.queue_fill(worker="w1", rng=rng)
    assert (report.generated_item_ids, report.failed_item_ids) == ([good.pk], [bad.pk])
    assert "end with a user message" in GenerationClaim.objects.get(item=bad).last_error


def test_a_crash_mid_generation_releases_the_claims(tiny_model_dir, rng, monkeypatch):
    deploy_local(tiny_model_dir)
    queue_prompts(2)

    def crash(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(filling, "store_samples", crash)
    with pytest.raises(MemoryError):
        services.queue_fill(worker="w1", rng=rng)
    assert len(services.items_claim_for_generation(worker="w2", limit=5)) == 2


def test_a_continued_dialogue_is_answered_in_context_before_the_pool(tiny_model_dir, rng, settings):
    from annotation_site.annotation.models import DialogueSource
    from annotation_site.annotation.services import ANNOTATOR_PRIORITY, PromptSpec, prompts_queue

    settings.GENERATION_BATCH_ITEMS = 1
    deploy_local(tiny_model_dir)
    (pool_item,) = queue_prompts(1, text="hello")
    turns = [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "the chosen answer of the last comparison"},
        {"role": "user", "content": "and then?"},
    ]
    (continued,) = prompts_queue(
        prompts=[PromptSpec(turns=turns, guideline_kind="helpfulness")],
        source=DialogueSource.CONTINUATION, priority=ANNOTATOR_PRIORITY,
    )
    assert services.queue_fill(worker="w1", rng=rng).generated_item_ids == [continued.pk]
    services.queue_fill(worker="w1", rng=rng)
    continued_sample, _ = _samples(continued)
    pool_sample, _ = _samples(pool_item)
    # The whole dialogue, chosen answer included, was the prompt.
    assert continued_sample.prompt_tokens > pool_sample.prompt_tokens + 10
