"""What the platform keeps of a model's answer: the one rule for generated text, on the way in.

A model can write anything a tokenizer can decode, and a server can send bytes that are not
UTF-8. PostgreSQL refuses NUL in text, psycopg2 cannot encode a lone surrogate, and a browser
shows control characters as boxes or not at all. Every `Completion` (vLLM client or local
engine) passes its text through `clean_generated_text` when it is built, so whatever stores or
shows an answer (the annotation queue, the RLHF recipes' files) gets text that PostgreSQL and a
browser take, and the count of characters that were changed:

- C0 control characters are removed, except tab and line feed; DEL and the C1 controls
  (U+007F-U+009F, which HTML also calls controls) are removed too;
- carriage returns become line feeds ("\\r\\n" -> "\\n", a lone "\\r" -> "\\n"), as HTML and
  Python's universal newlines read them, so what an annotator sees is what is exported;
- lone surrogates (a JSON "\\ud800" escape, or a byte that was not UTF-8, see
  `serving.client`) become U+FFFD, the replacement character a browser shows for bad bytes.
  (A U+FFFD the engine wrote itself, for tokens that end mid-character, is text like any other.)

An answer that is empty or only whitespace once cleaned is not usable (`is_usable_answer`):
the generation app does not store it and retries the item.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

REPLACEMENT_CHARACTER = "\ufffd"

# Removed: C0 controls but tab (\x09), line feed (\x0a) and carriage return (\x0d, handled apart),
# then DEL and the C1 controls. One character a match, so each match counts as one changed character.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# "\r\n" or a lone "\r": either way one character (the CR) changes.
_CARRIAGE_RETURN = re.compile("\r\n?")


@dataclass(frozen=True)
class CleanedText:
    text: str
    # Characters of the engine's text removed or replaced; 0 means the text is exactly as sent.
    cleaned_chars: int


def clean_generated_text(raw: str) -> CleanedText:
    """The answer as the platform stores it, and how many of its characters had to change."""
    # A valid pair reaches here as one code point (the JSON decoder joins escaped pairs), so a
    # surrogate code point is a half UTF-8 cannot encode: psycopg2 refuses it.
    text, surrogates = _LONE_SURROGATE.subn(REPLACEMENT_CHARACTER, raw)
    text, controls = _CONTROL.subn("", text)
    text, carriage_returns = _CARRIAGE_RETURN.subn("\n", text)
    return CleanedText(text=text, cleaned_chars=surrogates + controls + carriage_returns)


def is_usable_answer(text: str) -> bool:
    """False for an answer with nothing to read: empty, or only whitespace (Unicode's, as str.strip)."""
    return bool(text.strip())
