"""The exported batch folder, checked field by field against the rows it came from."""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.db import connection

from annotation_site.annotation.models import Comparison, Demonstration
from annotation_site.batches import services
from annotation_site.batches.export import files, writers
from annotation_site.batches.export.rows import item_hash
from annotation_site.batches.models import Batch, BatchState
from training import export_format
from training.export_format import MARGIN_TABLES
from tests.annotation_site.batches.factories import (
    make_annotator,
    make_comparison,
    make_demonstration,
    make_item,
    make_mixed_week,
)

pytestmark = pytest.mark.django_db

PREFERENCE_KEYS = {
    "prompt", "chosen", "rejected", "margin", "margin_table", "rating", "guideline", "chosen_is_safe",
    "rejected_is_safe", "safety_bin", "comparison_id", "item_id", "annotator", "chosen_model",
    "chosen_checkpoint", "chosen_sampling", "rejected_model", "rejected_checkpoint", "rejected_sampling",
    "source", "batch", "split",
}  # fmt: skip


@pytest.fixture(autouse=True)
def export_root(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.BATCH_TEST_SIZE = 0.25
    return settings.EXPORT_ROOT


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def close_and_export(**kwargs) -> Batch:
    batch, _ = services.batch_close(**kwargs)
    return services.batch_export(batch_id=batch.id)


def test_every_exported_preference_field_matches_its_database_rows():
    make_mixed_week(annotators=3, per_annotator=6)
    batch = close_and_export()
    folder = Path(batch.export_path)
    rows = read_jsonl(folder / "preferences.train.jsonl") + read_jsonl(folder / "preferences.test.jsonl")
    comparisons = {
        c.id: c
        for c in Comparison.objects.select_related(
            "item__dialogue", "chosen__checkpoint", "rejected__checkpoint", "annotator__profile"
        )
    }
    assert sorted(row["comparison_id"] for row in rows) == sorted(comparisons)
    for row in rows:
        c = comparisons[row["comparison_id"]]
        assert set(row) == PREFERENCE_KEYS
        assert row["prompt"] == c.item.dialogue.turns and row["prompt"][-1]["role"] == "user"
        assert row["chosen"] == [{"role": "assistant", "content": c.chosen.text}]
        assert row["rejected"] == [{"role": "assistant", "content": c.rejected.text}]
        assert row["margin"] == MARGIN_TABLES["small"][c.rating] and row["margin_table"] == "small"
        assert row["rating"] == c.rating and row["guideline"] == c.guideline_kind
        assert row["chosen_is_safe"] is c.chosen_is_safe and row["rejected_is_safe"] is c.rejected_is_safe
        assert row["safety_bin"] == (c.safety_bin or None)
        assert row["item_id"] == c.item_id and row["annotator"] == c.annotator.profile.pseudonym
        assert row["chosen_model"] == c.chosen.model_name and row["rejected_model"] == c.rejected.model_name
        assert row["chosen_checkpoint"] == (c.chosen.checkpoint.name if c.chosen.checkpoint else None)
        assert row["rejected_checkpoint"] == (c.rejected.checkpoint.name if c.rejected.checkpoint else None)
        assert row["chosen_sampling"] == c.chosen.sampling_params
        assert row["rejected_sampling"] == c.rejected.sampling_params
        assert row["source"] == "annotation" and row["batch"] == batch.week
        assert row["split"] == ("test" if item_hash(c.item_id) < 0.25 * 2**64 else "train")
    assert {row["split"] for row in rows} == {"train", "test"}


def test_parquet_twins_hold_the_same_rows_as_the_jsonl_files():
    make_mixed_week(annotators=2, per_annotator=6)
    folder = Path(close_and_export().export_path)
    for split in ("train", "test"):
        from_jsonl = read_jsonl(folder / f"preferences.{split}.jsonl")
        from_parquet = pq.read_table(folder / f"preferences.{split}.parquet").to_pylist()
        for row in from_parquet:
            row["chosen_sampling"] = json.loads(row["chosen_sampling"])
            row["rejected_sampling"] = json.loads(row["rejected_sampling"])
        assert from_parquet == from_jsonl


def test_hh_transcripts_and_sft_demonstrations_follow_their_formats():
    annotator = make_annotator()
    multi_turn = make_item(
        turns=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Name a fruit."},
        ]
    )
    comparison = make_comparison(item=multi_turn, annotator=annotator, rating="slightly_better")
    demonstration = make_demonstration(annotator=annotator, guideline_kind="safety", text="I can't help with that.")
    folder = Path(close_and_export().export_path)
    hh = read_jsonl(folder / "hh.train.jsonl") + read_jsonl(folder / "hh.test.jsonl")
    assert hh == [
        {
            "chosen": f"\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a fruit.\n\nAssistant: {comparison.chosen.text}",
            "rejected": f"\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a fruit.\n\nAssistant: {comparison.rejected.text}",
            "comparison_id": comparison.id,
            "guideline": "helpfulness",
            "margin": 1 / 3,
        }
    ]
    sft = read_jsonl(folder / "sft.jsonl")
    assert sft == [
        {
            "messages": demonstration.item.dialogue.turns + [{"role": "assistant", "content": "I can't help with that."}],
            "guideline": "safety",
            "demonstration_id": demonstration.id,
            "annotator": annotator.profile.pseudonym,
            "source": "annotation",
            "batch": Batch.objects.get().week,
        }
    ]


def test_every_exported_line_has_its_keys_sorted_at_every_level():
    # Sorted keys make the bytes independent of how a row was built.
    make_mixed_week(annotators=2, per_annotator=4)
    make_demonstration()
    folder = Path(close_and_export().export_path)

    def sorted_object(pairs):
        keys = [key for key, _ in pairs]
        assert keys == sorted(keys)
        return dict(pairs)

    for name in ("preferences.train.jsonl", "preferences.test.jsonl", "hh.train.jsonl", "hh.test.jsonl", "sft.jsonl"):
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            json.loads(line, object_pairs_hook=sorted_object)


def test_manifest_counts_and_checksums_describe_the_files():
    made = make_mixed_week(annotators=3, per_annotator=4)
    make_demonstration()
    batch = close_and_export()
    folder = Path(batch.export_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["batch"] == batch.week and manifest["name"] == batch.week
    assert manifest["created"] == batch.closed_at.isoformat()
    assert manifest["comparisons"] == len(made) and manifest["demonstrations"] == 1
    assert manifest["margin_table"] == "small" and manifest["margins"]["better"] == pytest.approx(2 / 3)
    assert manifest["code_version"] == services.code_version() != ""
    expected_files = {
        "preferences.train.jsonl", "preferences.test.jsonl", "preferences.train.parquet",
        "preferences.test.parquet", "hh.train.jsonl", "hh.test.jsonl", "sft.jsonl", "retracted.jsonl",
    }  # fmt: skip
    assert set(manifest["files"]) == expected_files
    assert {p.name for p in folder.iterdir()} == expected_files | {"manifest.json", "README.md"}
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256((folder / name).read_bytes()).hexdigest()
    assert manifest["files"]["sft.jsonl"]["rows"] == 1
    train_rows = manifest["files"]["preferences.train.jsonl"]["rows"]
    assert train_rows == len(read_jsonl(folder / "preferences.train.jsonl")) == manifest["counts"]["split"]["train"]
    db = Comparison.objects.filter(batch=batch)
    for field, key in (("guideline_kind", "guideline"), ("rating", "rating")):
        expected = {}
        for value in db.values_list(field, flat=True):
            expected[value] = expected.get(value, 0) + 1
        assert manifest["counts"][key] == dict(sorted(expected.items()))
    bins = {}
    for value in db.values_list("safety_bin", flat=True):
        bins[value or "none"] = bins.get(value or "none", 0) + 1
    assert manifest["counts"]["safety_bin"] == dict(sorted(bins.items()))
    assert sum(manifest["counts"]["annotator"].values()) == len(made) and len(manifest["counts"]["annotator"]) == 3
    card = (folder / "README.md").read_text()
    assert f"# Batch {batch.week}" in card and f"comparisons: {len(made)}" in card
    assert batch.counts["comparisons"] == len(made) and batch.state == BatchState.EXPORTED


def test_all_annotations_of_an_item_fall_on_the_same_side_of_the_split(settings):
    settings.BATCH_TEST_SIZE = 0.5
    items = [make_item() for _ in range(12)]
    for item in items:
        for _ in range(3):
            make_comparison(item=item, annotator=make_annotator())
    folder = Path(close_and_export().export_path)
    sides: dict[int, set[str]] = {}
    for split in ("train", "test"):
        for row in read_jsonl(folder / f"preferences.{split}.jsonl"):
            sides.setdefault(row["item_id"], set()).add(split)
    assert all(len(found) == 1 for found in sides.values())
    assert {next(iter(found)) for found in sides.values()} == {"train", "test"}


def test_a_count_holds_out_whole_items_with_the_smallest_hashes(settings):
    settings.BATCH_TEST_SIZE = 5
    settings.BATCH_TEST_MAX_FRACTION = 1.0
    items = [make_item() for _ in range(10)]
    for index, item in enumerate(items):
        for _ in range(1 + index % 2):
            make_comparison(item=item)
    folder = Path(close_and_export().export_path)
    test_items = {row["item_id"] for row in read_jsonl(folder / "preferences.test.jsonl")}
    by_hash = sorted(items, key=lambda item: item_hash(item.id))
    held, expected = 0, set()
    for item in by_hash:
        if held >= 5:
            break
        expected.add(item.id)
        held += item.comparisons.count()
    assert test_items == expected
    assert 5 <= Comparison.objects.filter(item_id__in=test_items).count() <= 6


def test_a_count_never_holds_out_more_than_the_max_fraction(settings):
    settings.BATCH_TEST_SIZE = 1000  # the paper's count, far above this small batch
    settings.BATCH_TEST_MAX_FRACTION = 0.2
    for _ in range(20):
        make_comparison()
    manifest = json.loads((Path(close_and_export().export_path) / "manifest.json").read_text())
    assert manifest["counts"]["split"] == {"test": 4, "train": 16}


def test_the_large_margin_table_gives_the_papers_margins(settings):
    settings.BATCH_MARGIN_TABLE = "large"
    for rating in ("significantly_better", "better", "slightly_better", "negligibly_better"):
        make_comparison(rating=rating)
    folder = Path(close_and_export().export_path)
    rows = read_jsonl(folder / "preferences.train.jsonl") + read_jsonl(folder / "preferences.test.jsonl")
    assert {row["rating"]: row["margin"] for row in rows} == {
        "significantly_better": 3.0, "better": 2.0, "slightly_better": 1.0, "negligibly_better": 0.0,
    }  # fmt: skip
    assert all(row["margin_table"] == "large" for row in rows)


def test_a_second_export_is_byte_identical_even_after_the_settings_change(settings, tmp_path):
    make_mixed_week(annotators=2, per_annotator=5)
    make_demonstration()
    batch = close_and_export()
    settings.BATCH_MARGIN_TABLE = "large"
    settings.BATCH_TEST_SIZE = 0.9
    settings.BATCH_EXPORT_CHUNK_SIZE = 3
    copy = tmp_path / "copy"
    services.batch_write_copy(batch=batch, out_dir=copy)
    first = {p.name: p.read_bytes() for p in Path(batch.export_path).iterdir()}
    again = {p.name: p.read_bytes() for p in copy.iterdir()}
    assert first == again


def test_files_written_in_many_chunks_and_row_groups_hold_the_same_rows(monkeypatch, tmp_path):
    # Tests have far fewer rows than a file block (4 MiB) or a row group (10,000 rows): shrink
    # both so the export crosses many boundaries, on both splits, and compare with one piece.
    make_mixed_week(annotators=3, per_annotator=7)
    make_demonstration()
    batch = close_and_export()
    monkeypatch.setattr(files.LineFile, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(writers, "PARQUET_ROW_GROUP_ROWS", 3)
    services.batch_write_copy(batch=batch, out_dir=tmp_path / "pieces")
    whole, pieces = Path(batch.export_path), tmp_path / "pieces"
    for name in ("preferences.train.jsonl", "preferences.test.jsonl", "hh.train.jsonl", "hh.test.jsonl", "sft.jsonl"):
        assert (pieces / name).read_bytes() == (whole / name).read_bytes(), name
    for split in ("train", "test"):
        parquet = pq.ParquetFile(pieces / f"preferences.{split}.parquet")
        rows = parquet.metadata.num_rows
        assert rows > 0 and parquet.metadata.num_row_groups == -(-rows // 3)
        assert parquet.read().to_pylist() == pq.read_table(whole / f"preferences.{split}.parquet").to_pylist()
        jsonl = read_jsonl(pieces / f"preferences.{split}.jsonl")
        assert [row["comparison_id"] for row in parquet.read(columns=["comparison_id"]).to_pylist()] == [
            row["comparison_id"] for row in jsonl
        ]


@pytest.mark.parametrize("o_direct", ["accepted", "refused"])
def test_lines_cross_file_blocks_whole_and_hashed_with_or_without_o_direct(o_direct, tmp_path, monkeypatch):
    if o_direct == "refused":  # as some filesystems do: the same blocks then go through the page cache
        real_open = os.open

        def refusing_open(path, flags, *args):
            if flags & os.O_DIRECT:
                raise OSError(errno.EINVAL, "Invalid argument")
            return real_open(path, flags, *args)

        monkeypatch.setattr(os, "open", refusing_open)
    monkeypatch.setattr(files.LineFile, "BLOCK_BYTES", 4096)
    lines = [b"%d %s\n" % (n, b"x" * (n * 377 % 10_000)) for n in range(60)]  # some longer than a block
    background = files.Background(depth=2)
    out = files.LineFile(tmp_path / "lines.jsonl", background)
    if o_direct == "refused":
        assert not fcntl.fcntl(out.handle.fileno(), fcntl.F_GETFL) & os.O_DIRECT
    for line in lines:
        out.add_line(line)
    out.close()
    background.close()
    written = (tmp_path / "lines.jsonl").read_bytes()
    assert written == b"".join(lines)
    assert out.rows == len(lines) and out.sha256.hexdigest() == hashlib.sha256(written).hexdigest()


def test_the_background_writer_runs_jobs_in_order_and_raises_the_first_failure():
    background = files.Background(depth=2)
    done = []
    for n in range(5):
        background.submit(done.append, n)

    def fail():
        raise OSError("No space left on device")

    background.submit(fail)
    background.submit(done.append, "after")
    with pytest.raises(OSError, match="No space left"):
        background.close()
    assert done[:5] == [0, 1, 2, 3, 4]


def test_pairs_with_the_chosen_response_unsafe_and_the_other_safe_never_appear():
    # The database refuses such rows; lift its check for this test to prove the export filters too.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE annotation_comparison DROP CONSTRAINT comparison_no_chosen_unsafe_other_safe"
            )
    else:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA ignore_check_constraints = ON")
    try:
        bad = make_comparison(guideline_kind="safety", chosen_is_safe=False, rejected_is_safe=True)
        good = make_comparison(guideline_kind="safety", chosen_is_safe=True, rejected_is_safe=False)
    finally:
        if connection.vendor != "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA ignore_check_constraints = OFF")
    assert Comparison.objects.filter(pk=bad.pk, chosen_is_safe=False, rejected_is_safe=True).exists()
    folder = Path(close_and_export().export_path)
    rows = read_jsonl(folder / "preferences.train.jsonl") + read_jsonl(folder / "preferences.test.jsonl")
    assert [row["comparison_id"] for row in rows] == [good.id]
    assert json.loads((folder / "manifest.json").read_text())["excluded_chosen_unsafe_other_safe"] == 1


def test_a_failing_export_leaves_no_batch_folder_and_marks_the_batch_failed(export_root):
    make_comparison()
    broken = make_item(turns=[{"role": "user"}])  # no content: the transcript cannot be written
    make_comparison(item=broken)
    batch, _ = services.batch_close()
    with pytest.raises(KeyError):
        services.batch_export(batch_id=batch.id)
    batch.refresh_from_db()
    assert batch.state == BatchState.FAILED and "KeyError" in batch.export_error
    assert list(export_root.iterdir()) == []


def test_an_exported_batch_is_not_written_again_unless_forced():
    make_comparison()
    batch = close_and_export()
    manifest = Path(batch.export_path) / "manifest.json"
    inode = manifest.stat().st_ino
    again = services.batch_export(batch_id=batch.id)
    assert again.export_attempts == 1 and manifest.stat().st_ino == inode
    forced = services.batch_export(batch_id=batch.id, force=True)
    assert forced.export_attempts == 2 and manifest.stat().st_ino != inode


def test_an_export_overtaken_by_a_newer_attempt_records_nothing_and_leaves_the_newer_result(settings):
    settings.BATCH_EXPORT_CHUNK_SIZE = 2
    for _ in range(6):
        make_comparison()
    batch, _ = services.batch_close()
    overtaken = []

    def start_a_second_export_midway(done, total):
        if done == 2 and not overtaken:
            overtaken.append(services.batch_export(batch_id=batch.id))  # e.g. a redelivered task

    with pytest.raises(services.ExportSuperseded, match="took over from attempt 1"):
        services.batch_export(batch_id=batch.id, on_progress=start_a_second_export_midway)
    batch.refresh_from_db()
    assert overtaken[0].export_attempts == 2
    assert batch.state == BatchState.EXPORTED and batch.export_attempts == 2 and batch.export_error == ""
    folder = Path(batch.export_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["comparisons"] == 6
    assert all(hashlib.sha256((folder / n).read_bytes()).hexdigest() == e["sha256"] for n, e in manifest["files"].items())
    assert sorted(p.name for p in folder.parent.iterdir()) == [batch.week]


def test_an_imported_source_exports_in_the_same_files(tmp_path):
    imported = [make_comparison(source="anthropic-hh-harmless", rating="") for _ in range(4)]
    make_comparison()  # the platform's own: not part of the source
    manifest = services.source_export(name="anthropic-hh-harmless", out_dir=tmp_path / "hh")
    rows = read_jsonl(tmp_path / "hh" / "preferences.train.jsonl") + read_jsonl(tmp_path / "hh" / "preferences.test.jsonl")
    assert sorted(row["comparison_id"] for row in rows) == [c.id for c in imported]
    assert all(row["batch"] is None and row["source"] == "anthropic-hh-harmless" for row in rows)
    assert all(row["rating"] is None and row["margin"] == 0.0 for row in rows)
    assert manifest["name"] == "anthropic-hh-harmless" and manifest["batch"] is None
    assert (tmp_path / "hh" / "README.md").read_text().startswith("# Source dataset anthropic-hh-harmless")


def test_an_unknown_source_is_refused_with_the_known_names(tmp_path):
    make_comparison(source="anthropic-hh-harmless")
    with pytest.raises(services.ApplicationError, match='no imported dataset named "nope".*anthropic-hh-harmless'):
        services.source_export(name="nope", out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


# --- an imported dataset keeps its own split ------------------------------------------------------


def _split_ids(folder: Path) -> dict[str, set[int]]:
    return {split: {row["comparison_id"] for row in read_jsonl(folder / f"preferences.{split}.jsonl")} for split in ("train", "test")}


def test_an_imported_dataset_keeps_the_split_it_was_imported_with_not_the_batches_hold_out(settings, tmp_path):
    settings.BATCH_TEST_SIZE = 0.5  # the weekly batches' hold-out: not applied to an imported dataset
    train = {make_comparison(source="hh", split="train").id for _ in range(6)}
    test = {make_comparison(source="hh", split="test").id for _ in range(4)}
    manifest = services.source_export(name="hh", out_dir=tmp_path / "hh")
    assert _split_ids(tmp_path / "hh") == {"train": train, "test": test}
    assert manifest["test_split"]["rule"].startswith("no hold-out; pairs imported with --split test")


def test_a_hold_out_chosen_at_export_is_drawn_from_the_training_pairs_only(settings, tmp_path):
    settings.BATCH_TEST_MAX_FRACTION = 1.0
    train = {make_comparison(source="hh", split="train").id for _ in range(8)}
    test = {make_comparison(source="hh", split="test").id for _ in range(3)}
    services.source_export(name="hh", out_dir=tmp_path / "count", test_size=2)
    sides = _split_ids(tmp_path / "count")
    assert test <= sides["test"] and len(sides["test"] - test) == 2 and sides["train"] < train
    services.source_export(name="hh", out_dir=tmp_path / "all", test_size="all")
    assert _split_ids(tmp_path / "all") == {"train": set(), "test": train | test}


def test_export_source_takes_the_test_size_on_the_command_line_and_refuses_a_bad_one(tmp_path):
    from django.core.management import CommandError, call_command

    ids = {make_comparison(source="hh", split="train").id for _ in range(3)}
    call_command("export_source", "hh", out=tmp_path / "all", test_size="all")
    assert _split_ids(tmp_path / "all")["test"] == ids
    with pytest.raises(CommandError, match="not a count, a fraction, 0 or all"):
        call_command("export_source", "hh", out=tmp_path / "bad", test_size="some")
    with pytest.raises(CommandError, match="whole count"):
        call_command("export_source", "hh", out=tmp_path / "bad", test_size="2.5")


def test_a_batch_test_size_of_zero_holds_nothing_out(settings):
    settings.BATCH_TEST_SIZE = 0
    made = {make_comparison().id for _ in range(5)}
    folder = Path(close_and_export().export_path)
    assert _split_ids(folder) == {"train": made, "test": set()}
    assert json.loads((folder / "manifest.json").read_text())["test_split"]["rule"] == "no hold-out"


def test_no_pair_of_a_file_imported_as_test_data_is_ever_trained_on(tmp_path, settings):
    """Import a train file and a test file as one dataset, export it with and without a further
    hold-out, and read it as the training recipes do: every test pair is evaluated, none trained on."""
    from django.core.management import call_command

    from training.data import load_eval_splits, load_preferences, parse_sources

    settings.BATCH_TEST_MAX_FRACTION = 1.0

    def hh(question: str, good: str, bad: str) -> str:
        return json.dumps({"chosen": f"\n\nHuman: {question}\n\nAssistant: {good}", "rejected": f"\n\nHuman: {question}\n\nAssistant: {bad}"})

    (tmp_path / "train.jsonl").write_text("\n".join(hh(f"Train question {i}?", "Yes.", "No.") for i in range(12)) + "\n")
    (tmp_path / "test.jsonl").write_text("\n".join(hh(f"Test question {i}?", "Yes.", "No.") for i in range(5)) + "\n")
    for name, split in (("train.jsonl", "train"), ("test.jsonl", "test")):
        call_command("import_preferences", str(tmp_path / name), format="hh-rlhf", guideline="safety", source="hh-harmless", split=split)
    for test_size in ("0", "3", "0.5"):
        out = tmp_path / f"export-{test_size}"
        call_command("export_source", "hh-harmless", out=out, test_size=test_size)
        sources = parse_sources([{"path": str(out)}])
        trained, _ = load_preferences(sources)
        evaluated, _ = load_eval_splits(sources)
        trained_questions = {row["prompt"][0]["content"] for row in trained}
        evaluated_questions = {row["prompt"][0]["content"] for rows in evaluated.values() for row in rows}
        test_questions = {f"Test question {i}?" for i in range(5)}
        assert not trained_questions & test_questions
        assert test_questions <= evaluated_questions
        assert len(trained_questions | evaluated_questions) == 17


# --- the contract both sides read (training/export_format.py) ------------------------------------


def test_the_contracts_ratings_guidelines_and_safety_bins_are_the_databases_choices():
    from annotation_site.annotation.models import GuidelineKind, Rating, SafetyBin

    assert export_format.RATINGS == tuple(Rating.values)
    assert export_format.GUIDELINES == tuple(GuidelineKind.values)
    assert export_format.SAFETY_BINS == tuple(SafetyBin.values)


def test_the_exported_folder_is_read_by_the_training_loader_through_the_contract(settings):
    from training.data import load_eval_splits, load_preferences, load_sft, parse_sources

    settings.BATCH_MARGIN_TABLE = "large"
    made = make_mixed_week(annotators=3, per_annotator=6)
    make_demonstration()
    folder = Path(close_and_export().export_path)
    manifest = json.loads((folder / export_format.MANIFEST_FILE).read_text())
    assert manifest["format_version"] == export_format.FORMAT_VERSION
    assert manifest["margins"] == export_format.MARGIN_TABLES["large"]

    sources = parse_sources([str(folder)])
    trained, _ = load_preferences(sources)
    evaluated, _ = load_eval_splits(sources)
    rows = trained + [row for split in evaluated.values() for row in split]
    assert sorted(row["comparison_id"] for row in rows) == sorted(c.id for c in made)
    for row in rows:
        assert tuple(row) == tuple(sorted(export_format.PREFERENCE_FIELDS))
        # What the reward-model recipe computes from the rating is what the exporter wrote.
        assert row["margin"] == export_format.rating_margin(row["rating"], row["margin_table"])
    for name in export_format.HH_FILES.values():
        for line in read_jsonl(folder / name):
            assert set(line) == set(export_format.HH_FIELDS)
    demonstrations, _ = load_sft(sources)
    assert [set(row) for row in demonstrations] == [set(export_format.SFT_FIELDS)]


def test_the_manifest_lists_exactly_the_files_of_the_writers():
    from annotation_site.batches import export

    make_mixed_week(annotators=2, per_annotator=3)
    make_demonstration()
    folder = Path(close_and_export().export_path)
    manifest = json.loads((folder / export_format.MANIFEST_FILE).read_text())
    kinds = export.COMPARISON_WRITERS + export.DEMONSTRATION_WRITERS + export.RETRACTED_WRITERS
    written = {name for kind in kinds for name in kind.FILES}
    assert set(manifest["files"]) == written
    assert {p.name for p in folder.iterdir()} == written | {export_format.MANIFEST_FILE, export_format.DATA_CARD_FILE}


class _ComparisonIds:
    """A format of one line per comparison id, as a new writer would be."""

    FILES = ("ids.txt",)

    def __init__(self, folder, options, background):
        self.file = files.LineFile(folder / "ids.txt", background)
        self.outputs = [self.file]

    def add(self, row):
        self.file.add_line(b"%d\n" % row.comparison_id)

    def close(self):
        self.file.close()


def test_a_new_format_is_one_writer_and_one_entry_in_the_list(monkeypatch, tmp_path):
    from annotation_site.batches import export

    made = make_mixed_week(annotators=2, per_annotator=4)
    batch = close_and_export()
    monkeypatch.setattr(export, "COMPARISON_WRITERS", (*export.COMPARISON_WRITERS, _ComparisonIds))
    manifest = services.batch_write_copy(batch=batch, out_dir=tmp_path / "copy")
    ids = (tmp_path / "copy" / "ids.txt").read_bytes()
    assert sorted(int(line) for line in ids.split()) == sorted(c.id for c in made)
    assert manifest["files"]["ids.txt"] == {"rows": len(made), "sha256": hashlib.sha256(ids).hexdigest()}
    assert "`ids.txt`" in (tmp_path / "copy" / export_format.DATA_CARD_FILE).read_text()
    for name in manifest["files"]:
        if name != "ids.txt":
            assert (tmp_path / "copy" / name).read_bytes() == (Path(batch.export_path) / name).read_bytes(), name
