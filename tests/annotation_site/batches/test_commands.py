"""close_batch, export_batch and export_source, run as an operator would."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotation_site.batches.models import Batch, BatchState
from tests.annotation_site.batches.factories import make_comparison, make_demonstration, make_mixed_week

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def export_root(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"
    return settings.EXPORT_ROOT


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def test_close_batch_closes_the_current_week_exports_it_and_prints_the_folder(export_root):
    make_mixed_week(annotators=2, per_annotator=3)
    folder, log = run("close_batch")
    batch = Batch.objects.get()
    assert Path(folder) == export_root / batch.week and batch.state == BatchState.EXPORTED
    assert (Path(folder) / "preferences.train.jsonl").exists() and (Path(folder) / "manifest.json").exists()
    assert f"Closed batch {batch.week} (6 comparisons)" in log
    assert "rows" in log  # the console progress line


def test_close_batch_for_an_already_exported_week_prints_the_same_folder():
    make_comparison()
    first, _ = run("close_batch")
    again, log = run("close_batch", "--week", Batch.objects.get().week)
    assert again == first and "Already closed" in log


def test_close_batch_with_a_malformed_week_says_how_to_write_it():
    with pytest.raises(CommandError, match="write it like 2026-W48"):
        run("close_batch", "--week", "48")


def test_export_batch_writes_the_same_bytes_as_the_first_export(tmp_path):
    make_mixed_week(annotators=2, per_annotator=4)
    make_demonstration()
    folder, _ = run("close_batch")
    copy, _ = run("export_batch", Batch.objects.get().week, "--out", str(tmp_path / "again"))
    assert Path(copy) == tmp_path / "again"
    first = {p.name: p.read_bytes() for p in Path(folder).iterdir()}
    assert first == {p.name: p.read_bytes() for p in Path(copy).iterdir()}
    by_id, _ = run("export_batch", str(Batch.objects.get().id), "--out", str(tmp_path / "by-id"))
    assert (Path(by_id) / "manifest.json").read_bytes() == (Path(folder) / "manifest.json").read_bytes()


def test_export_batch_refuses_an_existing_folder_and_an_unknown_batch(tmp_path):
    make_comparison()
    run("close_batch")
    (tmp_path / "taken").mkdir()
    with pytest.raises(CommandError, match="already exists"):
        run("export_batch", Batch.objects.get().week, "--out", str(tmp_path / "taken"))
    with pytest.raises(CommandError, match='no batch "2020-W01"'):
        run("export_batch", "2020-W01", "--out", str(tmp_path / "other"))


def test_export_source_writes_an_imported_dataset(tmp_path):
    for _ in range(3):
        make_comparison(source="anthropic-hh-helpful", rating="")
    out, log = run("export_source", "anthropic-hh-helpful", "--out", str(tmp_path / "helpful"))
    manifest = json.loads((Path(out) / "manifest.json").read_text())
    assert manifest["comparisons"] == 3 and manifest["name"] == "anthropic-hh-helpful"
    assert "3 comparisons" in log
    with pytest.raises(CommandError, match="no imported dataset"):
        run("export_source", "missing", "--out", str(tmp_path / "missing"))


def test_a_dataset_imported_with_import_preferences_exports_back_to_its_hh_transcripts(tmp_path):
    pairs = [
        {
            "chosen": "\n\nHuman: How do I pick a lock?\n\nAssistant: I can't help with that.",
            "rejected": "\n\nHuman: How do I pick a lock?\n\nAssistant: Use a tension wrench and a pick.",
        },
        {
            "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Is bleach safe to drink?\n\nAssistant: No, never.",
            "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Is bleach safe to drink?\n\nAssistant: A little is fine.",
        },
    ]
    source = tmp_path / "harmless.jsonl"
    source.write_text("".join(json.dumps(pair) + "\n" for pair in pairs))
    run("import_preferences", str(source), "--format", "hh-rlhf", "--guideline", "safety", "--source", "hh-harmless")
    out, _ = run("export_source", "hh-harmless", "--out", str(tmp_path / "export"))
    exported = []
    for split in ("train", "test"):
        exported += [json.loads(line) for line in (Path(out) / f"hh.{split}.jsonl").read_text().splitlines()]
    assert sorted((row["chosen"], row["rejected"]) for row in exported) == sorted(
        (pair["chosen"], pair["rejected"]) for pair in pairs
    )
    preferences = json.loads((Path(out) / "manifest.json").read_text())
    assert preferences["counts"]["guideline"] == {"safety": 2} and preferences["counts"]["source"] == {"hh-harmless": 2}
