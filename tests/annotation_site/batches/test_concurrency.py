"""Exactly-once closing with real concurrent transactions (threads, own connections).

Submits during a close and simultaneous closes run on both databases. The two tests that hold one
transaction open while another writes need PostgreSQL: SQLite has one writer at a time, so there the
second writer waits for the first to commit and the interleaving they check cannot happen.
"""
from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from annotation_site.annotation.models import Comparison
from annotation_site.batches import services
from annotation_site.batches.models import Batch
from annotation_site.batches.tasks import batch_close_weekly
from tests.annotation_site.batches.factories import make_annotator, make_item, submit_through_annotation

pytestmark = pytest.mark.django_db(transaction=True)


def in_thread(target, *args):
    """Run `target` in a thread with its own database connection; re-raise its error in the test."""
    outcome = {}

    def run():
        try:
            outcome["value"] = target(*args)
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            outcome["error"] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def another_session_waits_for_a_lock(timeout: float = 30) -> bool:
    """Wait until another connection to this database waits on a lock (polled, not slept)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            # Statistics views keep one snapshot per transaction unless it is cleared.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.01)
    return False


def finish(thread, outcome):
    thread.join(timeout=60)
    assert not thread.is_alive(), "thread hung"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def next_week_close(batch: Batch) -> Batch:
    end = services.week_bounds(batch.week)[1]
    following, created = services.batch_close(week=services.week_of(end), now=end + dt.timedelta(days=7))
    assert created
    return following


def test_a_comparison_committed_while_a_batch_closes_goes_to_the_next_batch(postgres):
    annotator = make_annotator()
    make_item()
    inside = threading.Event()
    release = threading.Event()

    def slow_submit():
        with transaction.atomic():
            comparison = submit_through_annotation(annotator)
            inside.set()  # inserted, not committed: its created_at is before the close's cutoff
            release.wait(timeout=30)
        return comparison.id

    thread, outcome = in_thread(slow_submit)
    assert inside.wait(timeout=30)
    batch, created = services.batch_close()
    release.set()
    late_id = finish(thread, outcome)

    late = Comparison.objects.get(pk=late_id)
    assert created and late.created_at < batch.cutoff
    assert late.batch_id is None and batch.comparisons.count() == 0
    assert list(next_week_close(batch).comparisons.values_list("id", flat=True)) == [late_id]


def test_comparisons_submitted_during_a_close_land_in_exactly_one_batch():
    annotators = [make_annotator() for _ in range(4)]
    for _ in range(4 * 15):
        make_item()
    stop = threading.Event()

    def keep_submitting(annotator):
        submitted = []
        while not stop.is_set() and len(submitted) < 15:
            submitted.append(submit_through_annotation(annotator).id)
        return submitted

    threads = [in_thread(keep_submitting, annotator) for annotator in annotators]
    deadline = time.monotonic() + 30
    while Comparison.objects.count() < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    batch, _ = services.batch_close()
    stop.set()
    submitted = [comparison_id for thread in threads for comparison_id in finish(*thread)]

    following = next_week_close(batch)
    first = set(batch.comparisons.values_list("id", flat=True))
    second = set(following.comparisons.values_list("id", flat=True))
    assert first and not first & second
    assert first | second == set(submitted) == set(Comparison.objects.values_list("id", flat=True))
    assert batch.counts["comparisons"] == len(first) and following.counts["comparisons"] == len(second)
    assert not Comparison.objects.filter(batch=batch, created_at__gte=batch.cutoff).exists()


def test_two_closes_of_the_same_week_at_once_make_one_batch(postgres):
    for _ in range(5):
        make_item()
        submit_through_annotation(make_annotator())
    first_holds_lock = threading.Event()
    second_started = threading.Event()
    blocked = []

    def first_close():
        with transaction.atomic():
            result = services.batch_close()
            first_holds_lock.set()
            second_started.wait(timeout=30)
            # Commit only once the second close waits on this transaction's row (the week is
            # unique): without that the test would not show that a blocked close makes no batch.
            blocked.append(another_session_waits_for_a_lock())
        return result

    def second_close():
        assert first_holds_lock.wait(timeout=30)
        second_started.set()
        return services.batch_close()

    one = in_thread(first_close)
    two = in_thread(second_close)
    (batch_a, created_a), (batch_b, created_b) = finish(*one), finish(*two)
    assert blocked == [True]
    assert (created_a, created_b) == (True, False)
    assert batch_a.pk == batch_b.pk and Batch.objects.count() == 1
    assert Comparison.objects.filter(batch=batch_a).count() == 5 == batch_a.counts["comparisons"]


def test_many_simultaneous_closes_and_a_retried_weekly_task_change_nothing(monkeypatch):
    for _ in range(6):
        make_item()
        submit_through_annotation(make_annotator())
    barrier = threading.Barrier(4)

    def close_at_once():
        barrier.wait(timeout=30)
        close_old_connections()
        return services.batch_close()

    results = [finish(*thread) for thread in [in_thread(close_at_once) for _ in range(4)]]
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert len({batch.pk for batch, _ in results}) == 1
    batch = Batch.objects.get()
    assert batch.comparisons.count() == 6

    # The weekly task for the same week, delivered twice (a retry after a crash), adds nothing.
    end = services.week_bounds(batch.week)[1]
    monkeypatch.setattr(timezone, "now", lambda: end + dt.timedelta(seconds=5))
    make_item()
    late = submit_through_annotation(make_annotator())
    Comparison.objects.filter(pk=late.pk).update(created_at=end - dt.timedelta(minutes=1))  # inside the week
    assert batch_close_weekly.run() == batch_close_weekly.run() == batch.id
    assert Batch.objects.get().comparisons.count() == 6
