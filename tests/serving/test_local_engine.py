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


def _token_ids(engine, text: str) -> list[int]:
    return engine.tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize(
    "written, stored, cleaned_chars",
    [
        ("NUL\x00 inside", "NUL inside", 1),
        ("escape\x1b and\r\nnewline", "escape and\nnewline", 2),
        ("fine text", "fine text", 0),
    ],
)
def test_the_local_engine_cleans_what_the_model_writes(engine, written, stored, cleaned_chars):
    # The engine's decoding step, fed the token ids a model could write (a byte-level tokenizer
    # has a token for every byte, NUL included) and then the end of turn.
    tokens = _token_ids(engine, written) + [engine.tokenizer.eos_token_id]
    completion = engine._completion([1, 2, 3], tokens, SamplingParams(), latency_ms=1.0)
    assert (completion.text, completion.cleaned_chars, completion.finish_reason) == (stored, cleaned_chars, "stop")


def test_bytes_that_end_mid_character_are_replacement_characters_not_an_error(engine):
    half_of_e_acute = _token_ids(engine, "é")[:1]  # "é" is two bytes: the first alone is not UTF-8
    completion = engine._completion([1], half_of_e_acute, SamplingParams(), latency_ms=1.0)
    assert "\ufffd" in completion.text and completion.usable


@pytest.mark.parametrize("written", ["", "   \n"])
def test_an_empty_or_whitespace_only_answer_is_not_usable(engine, written):
    tokens = _token_ids(engine, written) + [engine.tokenizer.eos_token_id]
    assert not engine._completion([1], tokens, SamplingParams(), latency_ms=1.0).usable


def test_whatever_the_random_model_writes_can_be_stored(engine):
    # Hot sampling of a random model writes control bytes and broken UTF-8; any output must come
    # back as text PostgreSQL and a browser take.
    answers = engine.chat(QUESTIONS, SamplingParams(temperature=1.5, max_tokens=48, n=4, seed=7))
    for completion in (c for per_conversation in answers for c in per_conversation):
        completion.text.encode("utf-8")
        assert not any(ord(c) < 0x20 and c not in "\t\n" for c in completion.text), repr(completion.text)
