"""The local transformers engine: batched, same interface and result shape as the vLLM client."""
import pytest
from transformers import AutoTokenizer

from serving.local_engine import LocalEngine, local_engine
from serving.types import SamplingParams, ServingError

QUESTIONS = [
    [{"role": "user", "content": "write a long story about the weather and travel and money"}],
    [{"role": "user", "content": "hello"}],
    [{"role": "user", "content": "thank you"}, {"role": "assistant", "content": "sure"}, {"role": "user", "content": "why"}],
]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return LocalEngine(tiny_model_dir, batch_size=4)


def test_answers_come_back_per_conversation_in_order_whatever_the_batching(engine, tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    params = SamplingParams(temperature=1.0, top_p=0.9, max_tokens=10, n=2, seed=3)
    answers = engine.chat(QUESTIONS, params)
    assert [len(per_conversation) for per_conversation in answers] == [2, 2, 2]
    for conversation, per_conversation in zip(QUESTIONS, answers):
        expected = len(tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True)["input_ids"])
        for completion in per_conversation:
            assert completion.prompt_tokens == expected
            assert 1 <= completion.completion_tokens <= 10
            assert completion.finish_reason in ("stop", "length")
            assert completion.engine == "local" and completion.sampling == params and completion.latency_ms > 0


def test_greedy_answers_are_the_same_batched_and_one_at_a_time(engine, tiny_model_dir):
    # Left padding and the attention mask must not change what a padded prompt generates.
    params = SamplingParams(temperature=0.0, max_tokens=8)
    batched = [a[0].text for a in engine.chat(QUESTIONS, params)]
    alone = LocalEngine(tiny_model_dir, batch_size=1)
    assert batched == [alone.chat([q], params)[0][0].text for q in QUESTIONS]


def test_max_tokens_ends_with_length_and_a_stop_string_ends_with_stop(engine):
    (capped,) = engine.chat(QUESTIONS[:1], SamplingParams(temperature=0.0, max_tokens=3))[0]
    assert (capped.finish_reason, capped.completion_tokens) == ("length", 3)
    sampled = SamplingParams(temperature=1.0, max_tokens=24, seed=5)
    long_text = engine.chat(QUESTIONS[:1], sampled)[0][0].text
    assert len(long_text) > 4, long_text
    stop = long_text[len(long_text) // 2 :][:2]
    (stopped,) = engine.chat(QUESTIONS[:1], SamplingParams(temperature=1.0, max_tokens=24, seed=5, stop=[stop]))[0]
    assert stopped.finish_reason == "stop" and stop not in stopped.text
    assert long_text.startswith(stopped.text) and len(stopped.text) < len(long_text)


def test_the_same_seed_gives_the_same_answers(engine):
    def texts(seed):
        return [[c.text for c in answers] for answers in engine.chat(QUESTIONS, SamplingParams(temperature=1.0, max_tokens=12, n=2, seed=seed))]

    assert texts(11) == texts(11) != texts(12)


def test_the_process_keeps_one_engine_per_checkpoint(tiny_model_dir):
    assert local_engine(tiny_model_dir) is local_engine(tiny_model_dir)


def test_a_folder_without_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(ServingError, match="no config.json"):
        LocalEngine(tmp_path)
