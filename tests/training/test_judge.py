"""The judge: strict parsing of its replies, both orders, and a real vLLM server answering it."""
import pytest

from serving.types import Completion
from training.judge import both_orders_outcome, judge_messages, judge_pairs, parse_verdict
from tests.support.vllm_server import tiny_vllm  # noqa: F401 (session fixture)


@pytest.mark.parametrize("reply, verdict", [
    ("A", "A"), ("B", "B"), (" B\n", "B"), ("A.", "A"), ("Response B", "B"), ("[[A]]", "A"), ("**B**", "B"),
])
def test_a_single_letter_is_a_verdict(reply, verdict):
    assert parse_verdict(reply) == verdict


@pytest.mark.parametrize("reply", [
    "", None, "a", "A or B", "AB", "Both are good.", "I cannot help with comparing these answers.",
    "A, because it is longer", "Response A is better", "the weather is python code", "C",
])
def test_anything_else_is_invalid(reply):
    assert parse_verdict(reply) is None


def test_both_orders_give_a_win_only_when_the_judge_picks_the_same_answer_twice():
    assert both_orders_outcome("A", "B") == "win"  # x shown first, then second: picked both times
    assert both_orders_outcome("B", "A") == "loss"
    assert both_orders_outcome("A", "A") == "tie"  # always the first position: a position bias, not a preference
    assert both_orders_outcome("B", "B") == "tie"
    assert both_orders_outcome(None, "B") == "invalid"
    assert both_orders_outcome("A", None) == "invalid"


def test_the_prompt_shows_the_conversation_both_answers_and_the_guideline():
    messages = judge_messages([{"role": "user", "content": "How do I pick a lock?"}], "first", "second", "safety")
    text = messages[-1]["content"]
    assert "How do I pick a lock?" in text
    assert text.index("[Response A]\nfirst") < text.index("[Response B]\nsecond")
    assert "harmful" in text and "exactly one letter" in text


class ScriptedJudge:
    """A judge outside the system that answers from a script, to feed the parser odd replies."""

    engine, model = "scripted", "scripted"

    def __init__(self, replies):
        self.replies = list(replies)
        self.conversations = []

    def chat(self, conversations, params):
        self.conversations += conversations
        assert params.temperature == 0.0
        return [[Completion(self.replies.pop(0), "stop", 1, 1, 0.0, self.model, self.engine, params)] for _ in conversations]


def test_each_pair_is_asked_in_both_orders_and_refusals_are_invalid():
    judge = ScriptedJudge(["A", "B", "B", "B", "I'm sorry, I can't judge that.", "A", "<|im_end|>", "", "B", "A"])
    items = [([{"role": "user", "content": f"question {i}"}], f"x{i}", f"y{i}", "helpfulness") for i in range(5)]
    results = judge_pairs(judge, items)
    assert [result.outcome for result in results] == ["win", "tie", "invalid", "invalid", "loss"]
    # The second request of each pair shows the answers swapped.
    first, second = judge.conversations[0][-1]["content"], judge.conversations[1][-1]["content"]
    assert first.index("x0") < first.index("y0") and second.index("y0") < second.index("x0")
    assert results[2].first_reply == "I'm sorry, I can't judge that." and results[2].first is None


@pytest.mark.vllm
def test_a_real_vllm_server_is_asked_twice_per_pair_and_its_replies_parsed_strictly(tiny_vllm):  # noqa: F811
    from serving.client import VLLMClient

    items = [([{"role": "user", "content": f"Tell me about topic {i}."}], "Bread is baked.", f"No {i}.", None)
             for i in range(4)]
    with VLLMClient(tiny_vllm.base_url, tiny_vllm.config.model_name) as client:
        results = judge_pairs(client, items, max_tokens=6)
    assert len(results) == 4
    for result in results:
        # Whatever the tiny random model says, its verdict is exactly what the strict parser reads.
        assert isinstance(result.first_reply, str) and isinstance(result.second_reply, str)
        assert result.first == parse_verdict(result.first_reply) and result.second == parse_verdict(result.second_reply)
        assert result.outcome == both_orders_outcome(result.first, result.second)
