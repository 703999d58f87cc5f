"""The one rule for generated text: what is removed or replaced, counted, and what is unusable."""
import dataclasses

import pytest

from serving.text import REPLACEMENT_CHARACTER, clean_generated_text, is_usable_answer
from serving.types import Completion, SamplingParams


@pytest.mark.parametrize(
    "raw, text, cleaned_chars",
    [
        ("A fine answer.", "A fine answer.", 0),
        ("tabs\tand\nnewlines stay", "tabs\tand\nnewlines stay", 0),
        ("emoji \U0001F600 and accents é stay", "emoji \U0001F600 and accents é stay", 0),
        ("nul\x00 inside", "nul inside", 1),
        ("bell\x07 escape\x1b[31m form feed\x0c vertical tab\x0b", "bell escape[31m form feed vertical tab", 4),
        ("del\x7f and c1 \x85\x9f controls", "del and c1  controls", 3),
        ("windows\r\nline\r\nends", "windows\nline\nends", 2),
        ("old mac\rline end", "old mac\nline end", 1),
        ("lone \ud800 high and \udc00 low", f"lone {REPLACEMENT_CHARACTER} high and {REPLACEMENT_CHARACTER} low", 2),
        ("\x00\x01\x02", "", 3),
    ],
)
def test_generated_text_is_cleaned_and_every_changed_character_counted(raw, text, cleaned_chars):
    cleaned = clean_generated_text(raw)
    assert (cleaned.text, cleaned.cleaned_chars) == (text, cleaned_chars)


def test_cleaned_text_can_be_encoded_as_utf8_for_any_input():
    every_bmp_code_point = "".join(chr(c) for c in range(0x10000))
    cleaned = clean_generated_text(every_bmp_code_point).text
    cleaned.encode("utf-8")  # a lone surrogate would raise here
    assert not any(ord(c) < 0x20 and c not in "\t\n" for c in cleaned)
    assert "\r" not in cleaned and "\x7f" not in cleaned


@pytest.mark.parametrize("text, usable", [("", False), (" \n\t ", False), ("\u3000\u00a0", False), (" ok ", True)])
def test_empty_and_whitespace_only_answers_are_not_usable(text, usable):
    assert is_usable_answer(text) is usable


def _completion(text: str) -> Completion:
    return Completion(
        text=text, finish_reason="stop", prompt_tokens=3, completion_tokens=2, latency_ms=1.0, model="m",
        engine="local", sampling=SamplingParams(),
    )


def test_a_completion_is_cleaned_when_it_is_built_and_keeps_the_count():
    completion = _completion("a\x00b\r\n")
    assert (completion.text, completion.cleaned_chars) == ("ab\n", 2)
    # A copy keeps the count: nothing is left to clean, nothing is lost.
    assert dataclasses.replace(completion, latency_ms=2.0).cleaned_chars == 2


def test_a_completion_that_is_only_control_characters_and_spaces_is_not_usable():
    assert not _completion("\x00 \x01\r\n").usable
    assert _completion("\x00yes").usable
