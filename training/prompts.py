"""Prompts for the RLHF recipes: the conversations a policy answers, each with its guideline.

Rejection sampling and PPO need prompts, not pairs. They come from the same data sources as the
other recipes (`training.data`): an exported folder gives the prompts of its preference pairs
(`preferences.train.jsonl`, whose `guideline` says whether a prompt is a safety prompt, eq. 3) and
of its demonstrations (`sft.jsonl`, the messages before the ideal answer); a JSONL file gives rows
of `{"prompt": [...messages ending with a user turn], "guideline": "helpfulness" | "safety"}`.
The same prompt annotated twice is kept once.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from training.data import (
    DataError,
    DataSource,
    _check_messages,
    _read_jsonl,
    parse_sources,
    read_preference_file,
    read_sft_file,
)
from training.export_format import PREFERENCE_FILES, SFT_FILE


@dataclass
class Prompt:
    messages: tuple  # ({"role": ..., "content": ...}, ...) ending with a user turn
    guideline: str | None  # "helpfulness", "safety", or None when unknown (treated as helpfulness)

    @property
    def chat(self) -> list[dict[str, str]]:
        return [dict(message) for message in self.messages]


def load_prompts(data: list, *, seed: int = 0, split: str = "train") -> list[Prompt]:
    """Every distinct prompt of the data sources (a recipe's `data` list), shuffled with `seed`.

    `split="test"` reads an exported folder's held-out pairs (`preferences.test.jsonl`) and no
    demonstrations, for evaluating on prompts no recipe trained on; a JSONL file is read whole.
    """
    prompts: dict[str, Prompt] = {}
    for source in parse_sources(data):
        for prompt in _source_prompts(source, split=split):
            prompts.setdefault(json.dumps([prompt.messages, prompt.guideline]), prompt)
    if not prompts:
        raise DataError(f"no prompts in {[entry for entry in data]} after filtering by guideline")
    ordered = list(prompts.values())
    random.Random(seed).shuffle(ordered)
    return ordered


def _source_prompts(source: DataSource, *, split: str = "train") -> list[Prompt]:
    path = Path(source.path)
    found: list[Prompt] = []
    if path.is_file():
        for line_number, row in _read_jsonl(path):
            _check_messages(row.get("prompt"), f"{path}:{line_number}", "prompt", last_role="user")
            found.append(_prompt(row["prompt"], row.get("guideline")))
    elif path.is_dir():
        preference_file, sft_file = path / PREFERENCE_FILES[split], path / SFT_FILE
        if split != "train":
            if not preference_file.is_file():
                raise DataError(f"data source {path} has no held-out pairs ({preference_file.name})")
            sft_file = None  # demonstrations have no held-out split
        elif not preference_file.is_file() and not sft_file.is_file():
            raise DataError(f"data source {path} has neither {preference_file.name} nor {sft_file.name}")
        if preference_file.is_file():
            for row in read_preference_file(preference_file, default_source=source.name):
                found.append(_prompt(row["prompt"], row.get("guideline")))
        if sft_file is not None and sft_file.is_file():
            for row in read_sft_file(sft_file, default_source=source.name):
                if len(row["messages"]) > 1 and row["messages"][-2]["role"] == "user":
                    found.append(_prompt(row["messages"][:-1], row.get("guideline")))
    else:
        raise DataError(f"data source {path} does not exist")
    if source.guidelines is not None:
        found = [prompt for prompt in found if prompt.guideline in source.guidelines]
    return found


def _prompt(messages: list[dict], guideline: str | None) -> Prompt:
    return Prompt(tuple({"role": m["role"], "content": m["content"]} for m in messages), guideline)
