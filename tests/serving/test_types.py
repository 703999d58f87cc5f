import pytest

from serving.types import SamplingParams, check_conversation


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 0}, "n must be"),
        ({"seed": 1.5}, "seed"),
        ({"stop": [""]}, "stop"),
    ],
)
def test_sampling_params_refuse_bad_values_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


def test_sampling_params_round_trip_through_a_dict():
    params = SamplingParams(temperature=0.7, top_p=0.9, max_tokens=64, n=2, seed=3, stop="###")
    assert params.stop == ("###",)
    assert params.to_dict() == {"temperature": 0.7, "top_p": 0.9, "max_tokens": 64, "n": 2, "seed": 3, "stop": ["###"]}
    assert SamplingParams.from_dict(params.to_dict()) == params
    with pytest.raises(ValueError, match="unknown sampling parameters: beam_width"):
        SamplingParams.from_dict({"beam_width": 4})


@pytest.mark.parametrize(
    "conversation",
    [[], [{"role": "user"}], [{"role": "robot", "content": "hi"}], [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]],
)
def test_conversations_must_be_chat_messages_ending_with_the_user(conversation):
    with pytest.raises(ValueError):
        check_conversation(conversation)
