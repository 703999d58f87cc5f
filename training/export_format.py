"""The exported folder as a contract: its file names, the keys of its rows, the ratings and margins.

Every field is described in docs/export-format.md. The batches app writes the folder
(annotation_site/batches/export/), `training/data.py` reads it, and annotation's import of JSONL
files reads our own exports back; all three take these names from here. This module imports
neither Django nor torch, so the site may read it and training never needs Django.
"""
from __future__ import annotations

# Raised when a field changes meaning or is removed; adding a field keeps it (docs/export-format.md).
FORMAT_VERSION = 1

SPLITS = ("train", "test")

# --- the files of a folder -------------------------------------------------------------------------

PREFERENCE_FILES = {split: f"preferences.{split}.jsonl" for split in SPLITS}
PARQUET_FILES = {split: f"preferences.{split}.parquet" for split in SPLITS}
HH_FILES = {split: f"hh.{split}.jsonl" for split in SPLITS}
SFT_FILE = "sft.jsonl"
# Comparisons of earlier batches that quality control excluded after they were exported: dropped
# from every folder a training mix reads.
RETRACTED_FILE = "retracted.jsonl"
MANIFEST_FILE = "manifest.json"
DATA_CARD_FILE = "README.md"

# --- the values ------------------------------------------------------------------------------------

GUIDELINES = ("helpfulness", "safety")
# Llama 2 §3.2.1, strongest first; null in a row for imported pairs without a strength.
RATINGS = ("significantly_better", "better", "slightly_better", "negligibly_better")
# Llama 2 §3.2.2; null in a row outside the safety guideline.
SAFETY_BINS = ("chosen_safe_other_unsafe", "both_safe", "both_unsafe")

# Llama 2 Table 27: the margin m(r) subtracted in the reward-model loss (eq. 2), by rating. An
# export writes one table's margins into its rows (the manifest's `margin_table`).
MARGIN_TABLES: dict[str, dict[str, float]] = {
    "small": {"significantly_better": 1.0, "better": 2 / 3, "slightly_better": 1 / 3, "negligibly_better": 0.0},
    "large": {"significantly_better": 3.0, "better": 2.0, "slightly_better": 1.0, "negligibly_better": 0.0},
}
# The paper's baseline, the plain binary ranking loss (eq. 1): a reward-model recipe may train
# without a margin; an export always writes one of Table 27's.
NO_MARGIN = "none"


def rating_margin(rating: str | None, table: str) -> float:
    """m(r) of Table 27 for one rating (0 for the NO_MARGIN baseline); a pair without a rating
    (None or "": imported data) gets no margin."""
    if table not in MARGIN_TABLES and table != NO_MARGIN:
        raise ValueError(f"margin table {table!r} is not one of {sorted([*MARGIN_TABLES, NO_MARGIN])}")
    if not rating:
        return 0.0
    if rating not in RATINGS:
        raise ValueError(f"rating {rating!r} is not one of {list(RATINGS)}")
    return 0.0 if table == NO_MARGIN else MARGIN_TABLES[table][rating]


def is_chosen_unsafe_other_safe(chosen_is_safe: bool | None, rejected_is_safe: bool | None) -> bool:
    """The pairs never trained on (Llama 2 §3.2.2): "we do not include any examples where the chosen
    response was unsafe and the other safe". The exporter leaves them out, the loader drops them."""
    return chosen_is_safe is False and rejected_is_safe is True


# --- the rows --------------------------------------------------------------------------------------

# A line of preferences.{train,test}.jsonl, in the order of the Parquet columns; the JSONL lines
# have their keys sorted. The first three are TRL's conversational preference format.
PREFERENCE_FIELDS = (
    "prompt", "chosen", "rejected", "margin", "margin_table", "rating", "guideline", "chosen_is_safe",
    "rejected_is_safe", "safety_bin", "comparison_id", "item_id", "annotator", "chosen_model",
    "chosen_checkpoint", "chosen_sampling", "rejected_model", "rejected_checkpoint", "rejected_sampling",
    "source", "batch", "split",
)  # fmt: skip
# A line of hh.{train,test}.jsonl: Anthropic HH-RLHF transcripts of the same comparisons.
HH_FIELDS = ("chosen", "rejected", "comparison_id", "guideline", "margin")
# A line of sft.jsonl: `messages` ends with the demonstration as the assistant's turn.
SFT_FIELDS = ("messages", "guideline", "demonstration_id", "annotator", "source", "batch")
# A line of retracted.jsonl.
RETRACTED_FIELDS = ("comparison_id", "reason", "batch")

HH_HUMAN, HH_ASSISTANT = "\n\nHuman: ", "\n\nAssistant: "


def hh_transcript(messages: list[dict]) -> str:
    """Anthropic HH style: "\\n\\nHuman: ...\\n\\nAssistant: ..." for each user and assistant turn."""
    return "".join([(HH_HUMAN if m["role"] == "user" else HH_ASSISTANT) + m["content"] for m in messages])
