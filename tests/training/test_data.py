import json

import pytest

from training.synthetic_batch import write_exported_batch
from training.config import ConfigError
from training.data import DataError, load_eval_splits, load_preferences, load_sft, parse_sources


def test_reads_an_exported_batch_and_drops_pairs_whose_chosen_is_unsafe_and_other_safe(tmp_path):
    folder = write_exported_batch(tmp_path / "w48", n_train=12, unsafe_chosen=3)

    rows, report = load_preferences(parse_sources([str(folder)]))

    assert len(rows) == 12
    assert report.dropped_unsafe_chosen == {"2026-W48": 3}
    assert not any(row["chosen_is_safe"] is False and row["rejected_is_safe"] is True for row in rows)
    assert rows[0]["prompt"][-1]["role"] == "user" and rows[0]["chosen"][0]["role"] == "assistant"


def test_guideline_filter_keeps_only_that_guideline(tmp_path):
    folder = write_exported_batch(tmp_path / "w48", n_train=12)

    rows, report = load_preferences(parse_sources([{"path": str(folder), "guidelines": ["safety"]}]))

    assert {row["guideline"] for row in rows} == {"safety"}
    assert len(rows) == 6 and report.dropped_guideline == {"2026-W48": 6}


def test_weights_multiply_and_shares_size_a_source_against_the_rest(tmp_path):
    helpful = write_exported_batch(tmp_path / "h", n_train=40, guidelines=("helpfulness",), batch="help")
    safety = write_exported_batch(tmp_path / "s", n_train=40, guidelines=("safety",), batch="safe")
    open_data = write_exported_batch(tmp_path / "o", n_train=40, batch="open", source="anthropic-hh")

    # the paper's helpfulness mix: all helpfulness data plus an equal portion of safety and open data
    rows, report = load_preferences(
        parse_sources([{"path": str(helpful)}, {"path": str(safety), "share": 0.25}, {"path": str(open_data), "share": 0.25}])
    )
    assert report.rows_per_source == {"help": 40, "safe": 20, "open": 20}
    assert len(rows) == 80

    rows, report = load_preferences(parse_sources([{"path": str(helpful), "weight": 0.5}, {"path": str(safety), "weight": 1.5}]))
    assert report.rows_per_source == {"help": 20, "safe": 60}


def test_mix_is_reproducible_from_the_seed(tmp_path):
    folder = write_exported_batch(tmp_path / "w48", n_train=30)
    sources = parse_sources([{"path": str(folder), "weight": 0.5}])
    first, _ = load_preferences(sources, seed=1)
    again, _ = load_preferences(sources, seed=1)
    other, _ = load_preferences(sources, seed=2)
    assert first == again
    assert first != other


def test_eval_splits_are_per_source_and_guideline(tmp_path):
    both = write_exported_batch(tmp_path / "w48", n_test=8)
    harmless = write_exported_batch(tmp_path / "harmless", n_test=4, guidelines=("safety",), batch="anthropic-harmless")

    splits, _ = load_eval_splits(parse_sources([str(both), str(harmless)]))

    assert {name: len(rows) for name, rows in splits.items()} == {
        "2026-W48/helpfulness": 4,
        "2026-W48/safety": 4,
        "anthropic-harmless": 4,
    }


def test_sft_reads_folders_and_plain_messages_jsonl(tmp_path):
    folder = write_exported_batch(tmp_path / "w48", n_train=6)
    extra = tmp_path / "extra.jsonl"
    extra.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}) + "\n")

    rows, report = load_sft(parse_sources([str(folder), str(extra)]))

    assert report.rows_per_source == {"2026-W48": 6, "extra": 1}
    assert {row["source"] for row in rows} == {"annotation", "extra"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"prompt": [], "chosen": [], "rejected": []}), "prompt must be a non-empty list"),
        (
            json.dumps({"prompt": [{"role": "assistant", "content": "x"}], "chosen": [{"role": "assistant", "content": "y"}], "rejected": [{"role": "assistant", "content": "z"}]}),
            "prompt must end with a user message",
        ),
        (
            json.dumps({"prompt": [{"role": "user", "content": "x"}], "chosen": [{"role": "assistant", "content": "y"}], "rejected": [{"role": "assistant", "content": "z"}], "rating": "much_better"}),
            "rating 'much_better'",
        ),
    ],
)
def test_bad_rows_are_errors_naming_file_and_line(tmp_path, line, message):
    folder = write_exported_batch(tmp_path / "w48", n_train=2)
    with (folder / "preferences.train.jsonl").open("a") as file:
        file.write(line + "\n")
    with pytest.raises(DataError, match=message) as error:
        load_preferences(parse_sources([str(folder)]))
    assert "preferences.train.jsonl:3" in str(error.value)


def test_bad_sources_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="at least one"):
        parse_sources([])
    with pytest.raises(ConfigError, match="unknown.*guidelines|guidelines.*unknown"):
        parse_sources([{"path": str(tmp_path), "guidelines": ["kindness"]}])
    with pytest.raises(ConfigError, match="several sources are named x"):
        parse_sources([{"path": str(tmp_path), "name": "x"}, {"path": str(tmp_path), "name": "x", "share": 0.1}])
    with pytest.raises(ConfigError, match="shares"):
        parse_sources([{"path": str(tmp_path), "share": 0.5}])
    with pytest.raises(DataError, match="not an exported folder"):
        load_preferences(parse_sources([str(tmp_path / "nope")]))


def test_a_folder_in_a_newer_export_format_is_refused_with_what_to_do(tmp_path):
    from training.export_format import FORMAT_VERSION, MANIFEST_FILE

    folder = write_exported_batch(tmp_path / "w48", n_train=4)
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    load_preferences(parse_sources([str(folder)]))  # the version this code writes is read
    (folder / MANIFEST_FILE).write_text(json.dumps({**manifest, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(DataError, match=f"export format {FORMAT_VERSION + 1}, newer than this code reads"):
        load_preferences(parse_sources([str(folder)]))
