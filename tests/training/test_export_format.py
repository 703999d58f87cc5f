"""The export's contract, as the training side reads it: no Django, no torch, and values by hand."""
from __future__ import annotations

import subprocess
import sys

import pytest

from training import export_format


def test_the_contract_imports_neither_django_nor_torch():
    code = (
        "import sys, training.export_format; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'torch', 'annotation_site'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_every_split_has_its_files_and_the_folder_names_are_the_documented_ones():
    assert export_format.PREFERENCE_FILES == {"train": "preferences.train.jsonl", "test": "preferences.test.jsonl"}
    assert export_format.PARQUET_FILES == {"train": "preferences.train.parquet", "test": "preferences.test.parquet"}
    assert export_format.HH_FILES == {"train": "hh.train.jsonl", "test": "hh.test.jsonl"}
    assert (export_format.SFT_FILE, export_format.RETRACTED_FILE) == ("sft.jsonl", "retracted.jsonl")
    assert (export_format.MANIFEST_FILE, export_format.DATA_CARD_FILE) == ("manifest.json", "README.md")


def test_a_preference_row_starts_with_trls_three_keys_and_names_each_field_once():
    assert export_format.PREFERENCE_FIELDS[:3] == ("prompt", "chosen", "rejected")
    for fields in (export_format.PREFERENCE_FIELDS, export_format.HH_FIELDS, export_format.SFT_FIELDS):
        assert len(set(fields)) == len(fields)


def test_every_margin_table_covers_every_rating_and_an_unrated_pair_gets_no_margin():
    for table in export_format.MARGIN_TABLES.values():
        assert tuple(table) == export_format.RATINGS
    for rating in (None, ""):
        assert export_format.rating_margin(rating, "large") == 0.0


@pytest.mark.parametrize(
    ("chosen_is_safe", "rejected_is_safe", "never_used"),
    [(False, True, True), (True, False, False), (True, True, False), (False, False, False), (None, None, False)],
)
def test_only_a_chosen_unsafe_response_beside_a_safe_one_is_never_used(chosen_is_safe, rejected_is_safe, never_used):
    assert export_format.is_chosen_unsafe_other_safe(chosen_is_safe, rejected_is_safe) is never_used


def test_hh_transcripts_name_each_speaker():
    turns = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Name a fruit."},
    ]
    assert export_format.hh_transcript(turns) == "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a fruit."


def test_the_reward_model_recipe_offers_the_contracts_tables_and_the_baseline():
    from typing import get_args, get_type_hints

    from training import reward_model

    offered = get_args(get_type_hints(reward_model.Config)["margin_table"])
    assert set(offered) == {*export_format.MARGIN_TABLES, export_format.NO_MARGIN}


def test_the_synthetic_batch_of_the_tests_writes_the_contracts_rows(tmp_path):
    import json

    from training.synthetic_batch import write_exported_batch

    folder = write_exported_batch(tmp_path / "w48", n_train=6, n_test=2)
    for split in export_format.SPLITS:
        for line in (folder / export_format.PREFERENCE_FILES[split]).read_text().splitlines():
            assert tuple(json.loads(line)) == export_format.PREFERENCE_FIELDS
        for line in (folder / export_format.HH_FILES[split]).read_text().splitlines():
            assert tuple(json.loads(line)) == export_format.HH_FIELDS
    for line in (folder / export_format.SFT_FILE).read_text().splitlines():
        assert tuple(json.loads(line)) == export_format.SFT_FIELDS
