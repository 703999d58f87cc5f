"""A synthetic batch folder in the exported format (docs/export-format.md; the names are
training/export_format.py's), for tests, benchmarks and smoke runs on machines without a platform database (bench/gpu_check.sh).

    python -m training.synthetic_batch --out var/exports/synthetic --train 256 --test 64

The chosen responses are drawn from helpful, polite words and the rejected ones from curt
refusals, so even a tiny random model can learn to rank them in a few steps. Not for real
training: real batches come from the annotation site (`manage.py export_batch`).
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from training.export_format import (
    DATA_CARD_FILE,
    FORMAT_VERSION,
    HH_FILES,
    MANIFEST_FILE,
    PREFERENCE_FILES,
    RATINGS,
    SFT_FILE,
    hh_transcript,
    rating_margin,
)

TOPICS = ["weather", "travel", "health", "money", "history", "science", "python", "recipe", "story", "poem"]
GOOD = "sure here are the steps explain example help good answer thank you".split()
BAD = "no sorry cannot not".split()


def _sentence(rng: random.Random, words: list[str], n: int) -> str:
    return " ".join(rng.choice(words) for _ in range(n)).capitalize() + "."


def preference_row(rng: random.Random, index: int, *, guideline: str, split: str, batch: str, source: str) -> dict:
    topic = rng.choice(TOPICS)
    prompt = [{"role": "user", "content": f"Please explain {topic} to me."}]
    if index % 3 == 0:  # a continued dialogue: the chosen answer of the earlier turn, then a new question
        prompt += [
            {"role": "assistant", "content": _sentence(rng, GOOD, 6)},
            {"role": "user", "content": f"And what about {rng.choice(TOPICS)}?"},
        ]
    rating = RATINGS[(index // 2) % 4]  # spread over both guidelines, which alternate
    row = {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": _sentence(rng, GOOD, rng.randint(6, 12))}],
        "rejected": [{"role": "assistant", "content": _sentence(rng, BAD, rng.randint(3, 6))}],
        "margin": rating_margin(rating, "small"),
        "margin_table": "small",
        "rating": rating,
        "guideline": guideline,
        "chosen_is_safe": None,
        "rejected_is_safe": None,
        "safety_bin": None,
        "comparison_id": index + 1,
        "item_id": index + 1,
        "annotator": f"annotator-{index % 5:04x}",
        "chosen_model": "tiny-sft-v2",
        "chosen_checkpoint": "tiny-sft-v2",
        "chosen_sampling": {"temperature": 0.7, "top_p": 0.9},
        "rejected_model": "tiny-sft-v1",
        "rejected_checkpoint": "tiny-sft-v1",
        "rejected_sampling": {"temperature": 1.0, "top_p": 0.9},
        "source": source,
        "batch": batch,
        "split": split,
    }
    if guideline == "safety":
        bins = [(True, False, "chosen_safe_other_unsafe"), (True, True, "both_safe"), (False, False, "both_unsafe")]
        row["chosen_is_safe"], row["rejected_is_safe"], row["safety_bin"] = bins[index % 3]
    return row


def write_exported_batch(
    folder: Path,
    *,
    n_train: int = 24,
    n_test: int = 8,
    guidelines: tuple[str, ...] = ("helpfulness", "safety"),
    batch: str = "2026-W48",
    source: str = "annotation",
    unsafe_chosen: int = 0,
    seed: int = 0,
) -> Path:
    """Write `folder` as the batches app exports it; `unsafe_chosen` extra train pairs are ones to drop."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    splits = {"train": n_train, "test": n_test}
    for split, count in splits.items():
        rows = [
            preference_row(rng, i, guideline=guidelines[i % len(guidelines)], split=split, batch=batch, source=source)
            for i in range(count)
        ]
        if split == "train":
            for i in range(unsafe_chosen):
                row = preference_row(rng, count + i, guideline="safety", split=split, batch=batch, source=source)
                row["chosen_is_safe"], row["rejected_is_safe"], row["safety_bin"] = False, True, None
                rows.append(row)
        (folder / PREFERENCE_FILES[split]).write_text("".join(json.dumps(row) + "\n" for row in rows))
        hh = [
            {
                "chosen": hh_transcript(row["prompt"] + row["chosen"]),
                "rejected": hh_transcript(row["prompt"] + row["rejected"]),
                "comparison_id": row["comparison_id"],
                "guideline": row["guideline"],
                "margin": row["margin"],
            }
            for row in rows
        ]
        (folder / HH_FILES[split]).write_text("".join(json.dumps(row) + "\n" for row in hh))
    demonstrations = [
        {
            "messages": [
                {"role": "user", "content": f"Please explain {rng.choice(TOPICS)} to me."},
                {"role": "assistant", "content": _sentence(rng, GOOD, rng.randint(8, 14))},
            ],
            "guideline": guidelines[i % len(guidelines)],
            "demonstration_id": i + 1,
            "annotator": f"annotator-{i % 5:04x}",
            "source": source,
            "batch": batch,
        }
        for i in range(n_train)
    ]
    (folder / SFT_FILE).write_text("".join(json.dumps(row) + "\n" for row in demonstrations))
    manifest = {"format_version": FORMAT_VERSION, "name": batch, "batch": batch, "counts": {"train": n_train, "test": n_test}}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    (folder / DATA_CARD_FILE).write_text(f"# Batch {batch}\n\nWritten by the training tests.\n")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a synthetic batch folder in the exported format.")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (created)")
    parser.add_argument("--train", type=int, default=256, help="training pairs (and demonstrations)")
    parser.add_argument("--test", type=int, default=64, help="held-out pairs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(write_exported_batch(args.out, n_train=args.train, n_test=args.test, batch="synthetic", seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
