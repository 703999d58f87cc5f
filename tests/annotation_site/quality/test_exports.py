"""Quality control in the exports: gold answers and exclusions stay out of training files (counted in
the manifest), a later exclusion never changes a closed batch but is retracted by the next one, and
the training loader drops retracted comparisons from every folder."""
import datetime as dt
import json

import pytest

from annotation_site.batches import services as batches
from annotation_site.quality import services
from tests.annotation_site.batches.factories import make_annotator, make_comparison
from tests.annotation_site.quality.factories import make_admin, make_gold
from training.data import DataSource, load_preferences

pytestmark = pytest.mark.django_db

UTC = dt.timezone.utc


@pytest.fixture(autouse=True)
def export_root(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.BATCH_TEST_SIZE = 0.01  # keep (almost) every pair in the train split
    return settings.EXPORT_ROOT


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def close_and_export(week: str, now: str):
    batch, _ = batches.batch_close(week=week, now=at(now))
    return batches.batch_export(batch_id=batch.pk)


def train_ids(folder) -> list[int]:
    ids = []
    for name in ("preferences.train.jsonl", "preferences.test.jsonl"):
        ids += [json.loads(line)["comparison_id"] for line in (folder / name).read_text().splitlines()]
    return sorted(ids)


def manifest(folder) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_gold_answers_and_exclusions_made_before_the_close_stay_out_and_are_counted(export_root):
    admin, person = make_admin(), make_annotator()
    kept = make_comparison(annotator=person, created_at=at("2026-11-24T10:00"))
    excluded = make_comparison(annotator=person, created_at=at("2026-11-24T10:05"))
    on_gold = make_comparison(annotator=person, item=make_gold(), created_at=at("2026-11-24T10:10"))
    services.comparison_exclude(comparison=excluded, reason="bad annotator", excluded_by=admin)
    batch = close_and_export("2026-W48", "2026-12-01T09:00")
    folder = export_root / "2026-W48"
    assert train_ids(folder) == [kept.pk]
    on_gold.refresh_from_db()
    assert on_gold.batch_id == batch.pk  # the gold answer is in the batch, but not in its files
    assert manifest(folder)["held_back"] == {"gold": 1, "excluded": {"bad annotator": 1}}
    assert batch.counts["held_back_gold"] == 1 and batch.counts["held_back_excluded"] == 1
    assert (folder / "retracted.jsonl").read_text() == ""


def test_an_exclusion_after_the_close_leaves_the_batch_as_it_was_and_is_retracted_by_the_next(export_root):
    admin, person = make_admin(), make_annotator()
    first = make_comparison(annotator=person, created_at=at("2026-11-24T10:00"))
    second = make_comparison(annotator=person, created_at=at("2026-11-24T10:05"))
    old_batch = close_and_export("2026-W48", "2026-12-01T09:00")
    old_folder = export_root / "2026-W48"
    before = (old_folder / "preferences.train.jsonl").read_bytes() + (old_folder / "manifest.json").read_bytes()
    services.comparison_exclude(comparison=second, reason="failed review", excluded_by=admin)
    batches.batch_export(batch_id=old_batch.pk, force=True)
    after = (old_folder / "preferences.train.jsonl").read_bytes() + (old_folder / "manifest.json").read_bytes()
    assert after == before  # a re-export of the closed batch writes the same bytes

    later = make_comparison(annotator=person, created_at=at("2026-12-02T10:00"))
    new_batch = close_and_export("2026-W49", "2026-12-08T09:00")
    new_folder = export_root / "2026-W49"
    retracted = [json.loads(line) for line in (new_folder / "retracted.jsonl").read_text().splitlines()]
    assert retracted == [{"batch": "2026-W48", "comparison_id": second.pk, "reason": "failed review"}]
    assert manifest(new_folder)["files"]["retracted.jsonl"]["rows"] == 1
    batches.batch_export(batch_id=new_batch.pk, force=True)
    assert [json.loads(line) for line in (new_folder / "retracted.jsonl").read_text().splitlines()] == retracted

    rows, report = load_preferences([DataSource(path=str(old_folder)), DataSource(path=str(new_folder))])
    assert sorted(row["comparison_id"] for row in rows) == sorted([first.pk, later.pk])
    assert report.dropped_retracted == {"2026-W48": 1, "2026-W49": 0}


def test_a_correction_excludes_the_original_and_goes_out_with_the_next_batch(export_root):
    from annotation_site.annotation.models import Comparison

    admin, person = make_admin(), make_annotator()
    original = make_comparison(annotator=person, created_at=at("2026-11-24T10:00"))
    close_and_export("2026-W48", "2026-12-01T09:00")
    review = services.review_decide(
        comparison=original, decision="correct", reason="the other answer is right", reviewer=admin,
        chosen_sample=original.rejected, rating="better",
    )  # fmt: skip
    correction = review.correction
    assert correction.chosen_id == original.rejected_id and correction.annotator == admin
    Comparison.objects.filter(pk=correction.pk).update(created_at=at("2026-12-02T10:00"))  # made during W49
    assert train_ids(export_root / "2026-W48") == [original.pk]  # the closed batch is unchanged
    close_and_export("2026-W49", "2026-12-08T09:00")
    assert train_ids(export_root / "2026-W49") == [correction.pk]
    retracted = (export_root / "2026-W49" / "retracted.jsonl").read_text()
    assert json.loads(retracted)["comparison_id"] == original.pk


def test_bulk_exclusion_of_an_annotator_in_a_date_range_is_previewed_then_applied(export_root):
    from annotation_site.quality import selectors

    admin, bad, good = make_admin(), make_annotator(), make_annotator()
    for day in ("2026-11-23", "2026-11-24", "2026-11-30"):
        make_comparison(annotator=bad, created_at=at(f"{day}T10:00"))
    make_comparison(annotator=good, created_at=at("2026-11-24T10:00"))
    close_and_export("2026-W48", "2026-12-01T00:00")
    preview = selectors.exclusion_preview(annotator_id=bad.pk, since=dt.date(2026, 11, 24), until=dt.date(2026, 11, 30))
    assert preview == {
        "comparisons": 2,
        "batches": [{"batch": "2026-W48", "excluded": 1, "of": 3}, {"batch": "open (next batch)", "excluded": 1, "of": None}],
    }
    count = services.annotator_exclude_range(
        annotator_id=bad.pk, since=dt.date(2026, 11, 24), until=dt.date(2026, 11, 30), reason="clicker", excluded_by=admin
    )
    assert count == 2
    assert selectors.exclusion_preview(annotator_id=bad.pk, since=dt.date(2026, 11, 24), until=dt.date(2026, 11, 30))["comparisons"] == 0
