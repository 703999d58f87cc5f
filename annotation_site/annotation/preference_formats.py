"""The shapes of public pairwise preference data `import_preferences` reads, one parser per format.

Every parser takes one decoded JSON line and returns a `PreferencePair`, or raises `LineError`
with what is wrong. What a parser had to change to fit a record to the platform's dialogue shape
is named in the pair's `notes` (the import's report counts them); every string is checked against
the platform's text rule (annotation_site/text_rules.py) before anything is written.

- `hh-rlhf`: Anthropic HH-RLHF, {"chosen": transcript, "rejected": transcript}. As TRL's
  hh-rlhf script and the DPO reference code do, the prompt is the shared start of the two
  transcripts up to its last "\\n\\nAssistant:" marker, and each response is everything after it.
- `jsonl`: TRL's preference formats, standard (strings) or conversational (lists of messages),
  with an explicit "prompt" or with the prompt implicit in a shared prefix of "chosen" and
  "rejected"; our own exports (the conversational explicit form plus metadata) are one case of it.
- `judge`: judge benchmarks' {"instruction", "output_1", "output_2", "label"}, label 1 or 2 naming
  the better output (AlpacaFarm's human preferences call it "preference", LLMBar "label"; LLMBar
  and AlpacaFarm call the instruction "input" or add an "input" to it).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings

from annotation_site.annotation.models import Rating
from annotation_site.annotation.services import validate_turns
from annotation_site.errors import ApplicationError
from annotation_site.text_rules import unstorable_reason
from training.export_format import HH_ASSISTANT, HH_HUMAN, PREFERENCE_FIELDS, is_chosen_unsafe_other_safe

# The markers of HH-RLHF transcripts, as our own hh.*.jsonl files write them.
HUMAN, ASSISTANT = HH_HUMAN.rstrip(" "), HH_ASSISTANT.rstrip(" ")
_HH_MARKERS = re.compile(f"({re.escape(HUMAN)}|{re.escape(ASSISTANT)})")

# What a parser changed or met in a record; the import's report counts the records of each.
JOINED_TURNS = "consecutive turns of one speaker joined into one turn"
DROPPED_EMPTY_TURNS = "empty turns of the dialogue dropped"
EMPTY_RESPONSE = "an empty response, kept empty"
MARKER_IN_RESPONSE = 'a response containing "\\n\\nHuman:" or "\\n\\nAssistant:", kept as the response\'s text'
PROMPT_FROM_PREFIX = "the prompt taken from the shared start of chosen and rejected"
# Real HH-RLHF files hold a few pairs whose two responses are the same text. They teach a reward
# model nothing, but TRL trains on them and the file must import whole, so they are kept and counted.
IDENTICAL_RESPONSES = "chosen and rejected responses identical, kept"

SUPPORTED = (
    'supported: --format jsonl (TRL preference rows: {"prompt", "chosen", "rejected"} or {"chosen", "rejected"} '
    "with a shared prompt, as strings or lists of messages), --format hh-rlhf (Anthropic HH transcripts), "
    '--format judge ({"instruction", "output_1", "output_2", "label": 1 or 2})'
)


class LineError(ValueError):
    """What is wrong with one line of an import file."""


@dataclass(frozen=True)
class PreferencePair:
    turns: list[dict]
    chosen: str
    rejected: str
    rating: str = ""
    chosen_is_safe: bool | None = None
    rejected_is_safe: bool | None = None
    chosen_model: str = ""
    rejected_model: str = ""
    chosen_sampling: dict = field(default_factory=dict)
    rejected_sampling: dict = field(default_factory=dict)
    # Normalisations applied (the constants above) and columns of the line that were not read.
    notes: tuple[str, ...] = ()
    ignored_keys: tuple[str, ...] = ()


def _pair(*, turns: list[dict], chosen: str, rejected: str, notes: set[str], **fields) -> PreferencePair:
    """The checks every format shares: storable text, a real difference, empty responses noted."""
    turns = check_turns(turns)
    if chosen == rejected:
        notes.add(IDENTICAL_RESPONSES)
    for name, text in (("chosen", chosen), ("rejected", rejected)):
        if not text.strip():
            notes.add(EMPTY_RESPONSE)
        if len(text) > settings.DIALOGUE_MAX_TURN_CHARS:
            raise LineError(f"the {name} response is longer than {settings.DIALOGUE_MAX_TURN_CHARS} characters (DIALOGUE_MAX_TURN_CHARS)")
        _check_storable(text, f"the {name} response")
    for key in ("chosen_model", "rejected_model", "chosen_sampling", "rejected_sampling"):
        _check_storable(fields.get(key), f'"{key}"')
    return PreferencePair(turns=turns, chosen=chosen, rejected=rejected, notes=tuple(sorted(notes)), **fields)


def _check_storable(value, where: str) -> None:
    reason = unstorable_reason(value, where=where)
    if reason:
        raise LineError(reason)


def check_turns(turns) -> list[dict]:
    try:
        return validate_turns(turns)
    except ApplicationError as error:
        raise LineError(f"bad dialogue: {error.message}") from None


def _joined(turns: list[dict], notes: set[str]) -> list[dict]:
    """Drop empty turns and join consecutive turns of one speaker with a blank line (noted)."""
    kept = [turn for turn in turns if turn["content"].strip()]
    if len(kept) < len(turns):
        notes.add(DROPPED_EMPTY_TURNS)
    joined: list[dict] = []
    for turn in kept:
        if joined and joined[-1]["role"] == turn["role"]:
            joined[-1] = {"role": turn["role"], "content": joined[-1]["content"] + "\n\n" + turn["content"]}
            notes.add(JOINED_TURNS)
        else:
            joined.append(dict(turn))
    return joined


# --- hh-rlhf ---------------------------------------------------------------------------------------


def _hh_turns(context: str, notes: set[str]) -> list[dict]:
    """The turns of a transcript's context ("\\n\\nHuman: ...\\n\\nAssistant: ..."), normalised."""
    pieces = _HH_MARKERS.split(context)  # ["", marker, text, marker, text, ...]
    turns = [
        {"role": "user" if marker == HUMAN else "assistant", "content": text.strip()}
        for marker, text in zip(pieces[1::2], pieces[2::2])
    ]
    return _joined(turns, notes)


def parse_hh_pair(row: dict, *, guideline_kind: str = "") -> PreferencePair:
    """One HH-RLHF row: the prompt is the shared start of the transcripts up to their last shared
    "\\n\\nAssistant:"; each response is the rest of its transcript, whatever it contains."""
    for key in ("chosen", "rejected"):
        if key not in row:
            raise LineError(f'missing key "{key}"')
        if not isinstance(row[key], str):
            raise LineError(f'"{key}" must be a transcript string')
    chosen, rejected = row["chosen"], row["rejected"]
    for name, text in (("chosen", chosen), ("rejected", rejected)):
        if not text.startswith(HUMAN):
            raise LineError(f'the {name} transcript does not start with "\\n\\nHuman:"')
    shared = _shared_prefix_length(chosen, rejected)
    split = chosen.rfind(ASSISTANT, 0, shared)
    if split == -1:
        raise LineError("the transcripts differ before their first assistant turn, so there is no shared prompt")
    notes: set[str] = set()
    turns = _hh_turns(chosen[:split], notes)
    if not turns or turns[-1]["role"] != "user":
        raise LineError("the transcripts share no human turn before the responses")
    responses = [text[split + len(ASSISTANT) :].strip() for text in (chosen, rejected)]
    if any(HUMAN in text or ASSISTANT in text for text in responses):
        notes.add(MARKER_IN_RESPONSE)
    return _pair(turns=turns, chosen=responses[0], rejected=responses[1], notes=notes, ignored_keys=_ignored(row, {"chosen", "rejected"}))


def _shared_prefix_length(a, b) -> int:
    """Length of the common start of two strings or lists: a binary search on slice equality, which
    compares in C (a character-by-character loop was a third of an HH import's parsing time)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


# --- jsonl: TRL's preference formats and our own exports -------------------------------------------

# TRL's three keys are the first of our own exports' (training/export_format.py); this parser reads
# prompt, chosen, rejected, rating, guideline, the safety labels, models and sampling parameters, and
# takes the rest of an exported row (margin, ids, split, ...) without naming it as ignored.
EXPORTED_KEYS = frozenset(PREFERENCE_FIELDS)


def _messages(value, key: str) -> list[dict]:
    if not isinstance(value, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
    ):
        raise LineError(f'"{key}" must be a string or a list of {{"role", "content"}} messages')
    if any(m["role"] == "system" for m in value):
        raise LineError(
            f'"{key}" has a system message; the platform\'s dialogues hold user and assistant turns only: '
            "fold it into the first user turn or drop it"
        )
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _single_response(messages: list[dict], key: str) -> str:
    if len(messages) != 1 or messages[0]["role"] != "assistant":
        raise LineError(f'"{key}" must be one response: a string or [{{"role": "assistant", "content": "..."}}]')
    return messages[0]["content"]


def _explicit_prompt(row: dict) -> tuple[list[dict], str, str]:
    prompt = row["prompt"]
    if isinstance(prompt, str):
        turns = [{"role": "user", "content": prompt}]
    else:
        turns = _messages(prompt, "prompt")
    responses = []
    for key in ("chosen", "rejected"):
        value = row[key]
        responses.append(value if isinstance(value, str) else _single_response(_messages(value, key), key))
    return turns, responses[0], responses[1]


def _implicit_prompt(row: dict, notes: set[str]) -> tuple[list[dict], str, str]:
    """TRL's implicit prompt: chosen and rejected repeat the prompt, which is their shared start."""
    chosen, rejected = row["chosen"], row["rejected"]
    notes.add(PROMPT_FROM_PREFIX)
    if isinstance(chosen, str) and isinstance(rejected, str):
        shared = _shared_prefix_length(chosen, rejected)
        # Back off to a word boundary so the prompt ends on a whole word (TRL backs off one space).
        cut = max(chosen.rfind(" ", 0, shared + 1), chosen.rfind("\n", 0, shared + 1))
        shared = cut if cut > 0 and shared < min(len(chosen), len(rejected)) else shared
        prompt = chosen[:shared]
        if not prompt.strip():
            raise LineError('"chosen" and "rejected" share no prompt: give a "prompt" key, or use --format hh-rlhf for transcripts')
        return [{"role": "user", "content": prompt.strip()}], chosen[shared:].strip(), rejected[shared:].strip()
    if isinstance(chosen, str) or isinstance(rejected, str):
        raise LineError('without a "prompt", "chosen" and "rejected" must both be strings or both lists of messages')
    chosen, rejected = _messages(chosen, "chosen"), _messages(rejected, "rejected")
    shared = _shared_prefix_length(chosen, rejected)
    if shared == 0:
        raise LineError('"chosen" and "rejected" share no first message, so there is no prompt: give a "prompt" key')
    return chosen[:shared], _single_response(chosen[shared:], "chosen"), _single_response(rejected[shared:], "rejected")


def _optional_bool(row: dict, key: str) -> bool | None:
    value = row.get(key)
    if value is not None and not isinstance(value, bool):
        raise LineError(f'"{key}" must be true, false or null')
    return value


def parse_jsonl_pair(row: dict, *, guideline_kind: str) -> PreferencePair:
    """One TRL preference row (explicit or implicit prompt, standard or conversational), with our metadata."""
    if not {"chosen", "rejected"} <= set(row):
        hint = " (this looks like a judge benchmark row: use --format judge)" if "output_1" in row else ""
        raise LineError(f"a line with the keys {', '.join(sorted(row)) or 'none'} is not a preference row{hint}; {SUPPORTED}")
    if row.get("guideline") not in (None, guideline_kind):
        raise LineError(f'the line says guideline "{row["guideline"]}" but the import is for "{guideline_kind}"')
    notes: set[str] = set()
    if "prompt" in row:
        turns, chosen, rejected = _explicit_prompt(row)
    elif isinstance(row["chosen"], str) and row["chosen"].startswith(HUMAN):
        raise LineError("this is an Anthropic HH transcript: import the file with --format hh-rlhf")
    else:
        turns, chosen, rejected = _implicit_prompt(row, notes)
    turns = _joined(turns, notes)
    rating = row.get("rating") or ""
    if rating and rating not in Rating.values:
        raise LineError(f'unknown rating "{rating}" (use one of {", ".join(Rating.values)} or null)')
    chosen_is_safe, rejected_is_safe = _optional_bool(row, "chosen_is_safe"), _optional_bool(row, "rejected_is_safe")
    if is_chosen_unsafe_other_safe(chosen_is_safe, rejected_is_safe):
        raise LineError("the chosen response is unsafe and the other safe; such pairs are never used")
    for key in ("chosen_sampling", "rejected_sampling"):
        if not isinstance(row.get(key) or {}, dict):
            raise LineError(f'"{key}" must be an object')
    return _pair(
        turns=turns,
        chosen=chosen,
        rejected=rejected,
        notes=notes,
        rating=rating,
        chosen_is_safe=chosen_is_safe,
        rejected_is_safe=rejected_is_safe,
        chosen_model=str(row.get("chosen_model") or ""),
        rejected_model=str(row.get("rejected_model") or ""),
        chosen_sampling=row.get("chosen_sampling") or {},
        rejected_sampling=row.get("rejected_sampling") or {},
        ignored_keys=_ignored(row, EXPORTED_KEYS),
    )


# --- judge benchmarks ------------------------------------------------------------------------------

JUDGE_LABEL_KEYS = ("label", "preference")


def parse_judge_pair(row: dict, *, guideline_kind: str = "") -> PreferencePair:
    """One judge-benchmark row: an instruction (plus an optional input), two outputs, and which is better."""
    instruction_key = "instruction" if "instruction" in row else "input"
    label_key = next((key for key in JUDGE_LABEL_KEYS if key in row), None)
    missing = [key for key in (instruction_key, "output_1", "output_2") if key not in row] + ([] if label_key else ["label"])
    if missing:
        hint = " (this looks like a TRL preference row: use --format jsonl)" if "chosen" in row else ""
        raise LineError(f"missing key(s) {', '.join(missing)}{hint}; {SUPPORTED}")
    for key in (instruction_key, "output_1", "output_2"):
        if not isinstance(row[key], str):
            raise LineError(f'"{key}" must be a string')
    label = row[label_key]
    if isinstance(label, str) and label.strip() in ("1", "2"):
        label = int(label)
    if label not in (1, 2) or isinstance(label, bool):
        raise LineError(
            f'"{label_key}" is {label!r}: it must be 1 or 2, the better output; ties and other labels carry no '
            "preference to train on (pass --skip-invalid to leave such lines out)"
        )
    prompt = row[instruction_key].strip()
    extra = row.get("input") if instruction_key == "instruction" else None
    if isinstance(extra, str) and extra.strip():
        prompt = f"{prompt}\n\n{extra.strip()}"
    better, worse = (row["output_1"], row["output_2"]) if label == 1 else (row["output_2"], row["output_1"])
    read = {instruction_key, "input", "output_1", "output_2", label_key}
    return _pair(
        turns=[{"role": "user", "content": prompt}], chosen=better.strip(), rejected=worse.strip(), notes=set(),
        ignored_keys=_ignored(row, read),
    )


def _ignored(row: dict, read: set[str]) -> tuple[str, ...]:
    return tuple(sorted(set(row) - read))


# The formats `import_preferences --format` names, and the parser of each; every parser takes the
# import's guideline (only the jsonl rows can name one, which must agree).
FORMATS: dict[str, Callable[..., PreferencePair]] = {
    "hh-rlhf": parse_hh_pair,
    "jsonl": parse_jsonl_pair,
    "judge": parse_judge_pair,
}
