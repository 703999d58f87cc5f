"""Closing batches: which comparisons go in, exactly once, and what is refused."""
from __future__ import annotations

import datetime as dt

import pytest

from annotation_site.annotation.models import Comparison, Demonstration
from annotation_site.batches import services
from annotation_site.batches.models import Batch, BatchState
from annotation_site.batches.tasks import batch_close_weekly
from annotation_site.errors import ApplicationError, Conflict
from tests.annotation_site.batches.factories import make_comparison, make_demonstration

pytestmark = pytest.mark.django_db

UTC = dt.timezone.utc


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_iso_week_bounds_run_monday_to_monday_utc():
    assert services.week_bounds("2026-W48") == (at("2026-11-23T00:00"), at("2026-11-30T00:00"))
    assert services.week_bounds("2026-W53") == (at("2026-12-28T00:00"), at("2027-01-04T00:00"))
    assert services.week_of(at("2027-01-03T23:59")) == "2026-W53"
    assert services.previous_week(at("2026-11-30T00:00")) == "2026-W48"


@pytest.mark.parametrize("week", ["2026-48", "2026-W4", "W48", "", "2025-W53"])
def test_a_malformed_or_missing_week_is_refused_with_the_format(week):
    with pytest.raises(ApplicationError, match="ISO week"):
        services.week_bounds(week)


def test_closing_a_week_takes_every_unbatched_comparison_created_before_its_end():
    earlier_week = make_comparison(created_at=at("2026-11-10T12:00"))
    in_week = make_comparison(created_at=at("2026-11-29T23:59:59"))
    next_week = make_comparison(created_at=at("2026-11-30T00:00"))
    imported = make_comparison(source="anthropic-hh", created_at=at("2026-11-25T00:00"))
    demonstration = make_demonstration()
    Demonstration.objects.filter(pk=demonstration.pk).update(created_at=at("2026-11-24T08:00"))

    batch, created = services.batch_close(week="2026-W48", now=at("2026-12-01T09:00"))

    assert created and not batch.closed_early
    assert batch.cutoff == at("2026-11-30T00:00")
    assert set(batch.comparisons.values_list("id", flat=True)) == {earlier_week.id, in_week.id}
    assert list(batch.demonstrations.values_list("id", flat=True)) == [demonstration.id]
    assert Comparison.objects.get(pk=next_week.id).batch is None
    assert Comparison.objects.get(pk=imported.id).batch is None, "imported datasets export as sources, not batches"
    assert batch.counts == {"comparisons": 2, "demonstrations": 1, "guideline": {"helpfulness": 2}}
    assert batch.export_options["margin_table"] == "small" and batch.export_options["test_size"] == 1000


def test_closing_early_cuts_at_now_and_later_comparisons_go_to_the_next_batch():
    before = make_comparison(created_at=at("2026-11-25T10:00"))
    after = make_comparison(created_at=at("2026-11-26T10:00"))
    batch, _ = services.batch_close(week="2026-W48", now=at("2026-11-25T12:00"))
    assert batch.closed_early and batch.cutoff == at("2026-11-25T12:00")
    assert list(batch.comparisons.values_list("id", flat=True)) == [before.id]

    following, _ = services.batch_close(week="2026-W49", now=at("2026-12-08T00:00"))
    assert list(following.comparisons.values_list("id", flat=True)) == [after.id]


def test_closing_the_same_week_twice_changes_nothing():
    first_comparison = make_comparison(created_at=at("2026-11-24T10:00"))
    batch, created = services.batch_close(week="2026-W48", now=at("2026-11-25T12:00"))
    late = make_comparison(created_at=at("2026-11-25T11:00"))  # committed after the close

    again, created_again = services.batch_close(week="2026-W48", now=at("2026-12-01T00:00"))

    assert created and not created_again
    assert again.pk == batch.pk and again.cutoff == batch.cutoff
    assert list(again.comparisons.values_list("id", flat=True)) == [first_comparison.id]
    assert Comparison.objects.get(pk=late.pk).batch is None
    assert Batch.objects.count() == 1


def test_a_retried_weekly_task_closes_the_previous_week_once(monkeypatch):
    make_comparison(created_at=at("2026-11-24T10:00"))
    monkeypatch.setattr(services.timezone, "now", lambda: at("2026-11-30T00:00:05"))
    first = batch_close_weekly.run()
    make_comparison(created_at=at("2026-11-29T10:00"))  # a late commit, stamped inside the week
    second = batch_close_weekly.run()
    assert first == second
    batch = Batch.objects.get()
    assert batch.week == "2026-W48" and batch.comparisons.count() == 1


def test_a_week_that_has_not_started_cannot_be_closed():
    with pytest.raises(ApplicationError, match="has not started"):
        services.batch_close(week="2026-W50", now=at("2026-11-25T00:00"))


def test_an_earlier_week_cannot_be_closed_after_a_later_one():
    services.batch_close(week="2026-W48", now=at("2026-12-01T00:00"))
    with pytest.raises(Conflict, match="2026-W48 is already closed"):
        services.batch_close(week="2026-W47", now=at("2026-12-01T00:00"))


def test_invalid_export_settings_refuse_to_close(settings):
    settings.BATCH_MARGIN_TABLE = "huge"
    with pytest.raises(ApplicationError, match='Unknown margin table "huge"'):
        services.batch_close(week="2026-W48", now=at("2026-12-01T00:00"))
    assert not Batch.objects.exists()


def test_the_watchdog_picks_up_exports_that_never_started_or_lost_their_worker(settings):
    from annotation_site.batches.selectors import batches_needing_export

    now = at("2026-12-01T12:00")
    settings.BATCH_EXPORT_STALE_AFTER_S = 600
    never_enqueued = Batch.objects.create(week="2026-W45", state=BatchState.CLOSED)
    enqueued_recently = Batch.objects.create(
        week="2026-W46", state=BatchState.CLOSED, export_enqueued_at=now - dt.timedelta(seconds=60)
    )
    silent_worker = Batch.objects.create(
        week="2026-W47", state=BatchState.EXPORTING, export_heartbeat_at=now - dt.timedelta(seconds=601)
    )
    busy_worker = Batch.objects.create(
        week="2026-W48", state=BatchState.EXPORTING, export_heartbeat_at=now - dt.timedelta(seconds=5)
    )
    Batch.objects.create(week="2026-W44", state=BatchState.EXPORTED)
    picked = set(batches_needing_export(now=now).values_list("id", flat=True))
    assert picked == {never_enqueued.id, silent_worker.id}
    assert enqueued_recently.id not in picked and busy_worker.id not in picked
