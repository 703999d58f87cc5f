"""Prompts for the RLHF recipes (training/prompts.py), from exported folders and prompt files."""
import json

import pytest

from training.data import DataError
from training.prompts import load_prompts


def user(text):
    return [{"role": "user", "content": text}]


def pair(prompt, guideline):
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": "good"}],
            "rejected": [{"role": "assistant", "content": "bad"}], "guideline": guideline}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def exported(tmp_path):
    folder = tmp_path / "2026-W48"
    folder.mkdir()
    dialogue = [*user("Hi"), {"role": "assistant", "content": "Hello!"}, *user("How do I pick a lock?")]
    write_jsonl(folder / "preferences.train.jsonl", [
        pair(user("Bake bread?"), "helpfulness"), pair(user("Bake bread?"), "helpfulness"), pair(dialogue, "safety"),
    ])
    write_jsonl(folder / "preferences.test.jsonl", [pair(user("Held out"), "helpfulness")])
    write_jsonl(folder / "sft.jsonl", [{"messages": [*user("Write a poem"), {"role": "assistant", "content": "Roses."}],
                                        "guideline": "helpfulness"}])
    return folder


def test_an_exported_folder_gives_each_training_prompt_once_with_its_guideline(exported):
    prompts = {(p.chat[-1]["content"], p.guideline, len(p.chat)) for p in load_prompts([str(exported)])}
    assert prompts == {("Bake bread?", "helpfulness", 1), ("How do I pick a lock?", "safety", 3),
                       ("Write a poem", "helpfulness", 1)}


def test_the_test_split_gives_the_held_out_prompts_and_no_demonstrations(exported, tmp_path):
    prompts = load_prompts([str(exported)], split="test")
    assert [(p.chat[-1]["content"], p.guideline) for p in prompts] == [("Held out", "helpfulness")]
    no_test = tmp_path / "2026-W49"
    no_test.mkdir()
    write_jsonl(no_test / "preferences.train.jsonl", [pair(user("Bake bread?"), "helpfulness")])
    with pytest.raises(DataError, match="has no held-out pairs"):
        load_prompts([str(no_test)], split="test")


def test_guideline_filter_keeps_only_that_guidelines_prompts(exported):
    prompts = load_prompts([{"path": str(exported), "guidelines": ["safety"]}])
    assert [p.guideline for p in prompts] == ["safety"]


def test_a_prompt_file_must_end_with_a_user_turn(tmp_path):
    path = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": user("fine")},
                                                    {"prompt": [{"role": "assistant", "content": "no"}]}])
    with pytest.raises(DataError, match=r"prompts.jsonl:2: prompt must end with a user message"):
        load_prompts([str(path)])


def test_a_missing_source_is_named(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_prompts([str(tmp_path / "nowhere")])
