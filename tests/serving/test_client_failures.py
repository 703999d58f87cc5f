"""The client against peers that fail: nothing listening, garbage, no answers, errors, slowness."""
import pytest

from serving.client import VLLMClient
from serving.types import EngineTimeout, EngineUnavailable, MalformedResponse, RequestRejected, SamplingParams
from tests.support.vllm_server import MisbehavingServer, completion_body, refusing_base_url

HELLO = [{"role": "user", "content": "Hello?"}]
PARAMS = SamplingParams(temperature=0.7, max_tokens=8)


def test_a_server_that_is_down_raises_unavailable_after_bounded_retries():
    with refusing_base_url() as url:
        client = VLLMClient(url, "m", max_retries=1, timeout_s=5)
        with pytest.raises(EngineUnavailable, match="cannot reach"):
            client.chat([HELLO], PARAMS)
        report = client.health()
    assert not report.healthy and url in report.detail


@pytest.mark.parametrize("behaviour", ["garbage", "html", "no_choices", "null_content"])
def test_malformed_answers_raise_malformed_response(behaviour):
    with MisbehavingServer(behaviour) as peer:
        client = VLLMClient(peer.base_url, "m", max_retries=0)
        with pytest.raises(MalformedResponse):
            client.chat([HELLO, HELLO], PARAMS)


def test_an_empty_answer_comes_back_as_empty_text_for_the_caller_to_judge():
    with MisbehavingServer("empty_text") as peer:
        (completion,) = VLLMClient(peer.base_url, "m").chat([HELLO], PARAMS)[0]
    assert completion.text == "" and completion.finish_reason == "stop"


def test_server_errors_are_retried_a_bounded_number_of_times():
    with MisbehavingServer("server_error") as peer:
        client = VLLMClient(peer.base_url, "m", max_retries=2)
        with pytest.raises(EngineUnavailable, match="HTTP 500"):
            client.chat([HELLO], PARAMS)
        assert peer.chat_requests == 3


def test_a_refused_request_is_not_retried_and_says_why():
    with MisbehavingServer("bad_request") as peer:
        client = VLLMClient(peer.base_url, "m", max_retries=2)
        with pytest.raises(RequestRejected, match="longer than the maximum context"):
            client.chat([HELLO], PARAMS)
        assert peer.chat_requests == 1


def test_a_slow_server_times_out():
    with MisbehavingServer("slow", delay_s=3) as peer:
        client = VLLMClient(peer.base_url, "m", timeout_s=0.5, max_retries=0)
        with pytest.raises(EngineTimeout, match="0.5 s"):
            client.chat([HELLO], PARAMS)


def test_health_names_the_model_the_server_does_not_serve():
    with MisbehavingServer("ok", model="other-model") as peer:
        assert VLLMClient(peer.base_url, "other-model").health().healthy
        report = VLLMClient(peer.base_url, "my-model").health()
    assert not report.healthy and "my-model" in report.detail


def test_answers_carry_the_usage_and_sampling_they_were_made_with():
    with MisbehavingServer("ok") as peer:
        (completion,) = VLLMClient(peer.base_url, "m").chat([HELLO], PARAMS)[0]
    assert (completion.text, completion.finish_reason, completion.prompt_tokens, completion.completion_tokens) == (
        "A fine answer.", "stop", 5, 3,
    )
    assert completion.sampling == PARAMS and completion.engine == "vllm" and completion.latency_ms > 0


@pytest.mark.parametrize(
    "sent, stored, cleaned_chars",
    [
        ("NUL\x00 from a random model", "NUL from a random model", 1),
        ("escape\x1b[0m and bell\x07", "escape[0m and bell", 2),
        ("carriage\r\nreturns\r", "carriage\nreturns\n", 2),
        ("a lone \udfff surrogate", "a lone \ufffd surrogate", 1),
    ],
)
def test_answers_arrive_cleaned_with_the_count_of_changed_characters(sent, stored, cleaned_chars):
    with MisbehavingServer("texts", texts=[sent]) as peer:
        (completion,) = VLLMClient(peer.base_url, "m").chat([HELLO], PARAMS)[0]
    assert (completion.text, completion.cleaned_chars) == (stored, cleaned_chars)
    assert completion.usable


def test_bytes_that_are_not_utf8_become_replacement_characters_instead_of_failing_the_request():
    body = completion_body(["caf\u00e9 BAD"]).replace(b"BAD", b"\xff\xfe\xc3")
    with MisbehavingServer("raw", body=body) as peer:
        (completion,) = VLLMClient(peer.base_url, "m").chat([HELLO], PARAMS)[0]
    assert (completion.text, completion.cleaned_chars) == ("caf\u00e9 \ufffd\ufffd\ufffd", 3)


def test_a_body_that_is_not_utf8_outside_the_answers_is_still_malformed():
    with MisbehavingServer("raw", body=b"\xff\xfe not json") as peer:
        with pytest.raises(MalformedResponse):
            VLLMClient(peer.base_url, "m", max_retries=0).chat([HELLO], PARAMS)


@pytest.mark.parametrize("sent", ["", " \n\t ", "\x00\r\n\x01"])
def test_empty_and_whitespace_only_answers_come_back_unusable(sent):
    with MisbehavingServer("texts", texts=[sent]) as peer:
        (completion,) = VLLMClient(peer.base_url, "m").chat([HELLO], PARAMS)[0]
    assert not completion.usable
