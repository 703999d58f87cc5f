"""Many annotators at once: no over-assignment, no lost or doubled submit.

Threads with their own connections, on both databases: PostgreSQL's row locks (SKIP LOCKED) and
SQLite's single writer (IMMEDIATE transactions, the demo) must each keep the counts exact. The
one-statement claim is PostgreSQL's function, so that test takes the `postgres` fixture.
"""
from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from annotation_site.annotation import services
from annotation_site.annotation.models import Assignment, AssignmentStatus, Comparison, Item, ItemStatus
from tests.annotation_site.annotation.factories import make_annotator, make_ready_item

pytestmark = pytest.mark.django_db(transaction=True)

ANNOTATORS = 12
ITEMS = 30
OVERLAP = 2


def in_own_connection(work):
    """Run `work` in a worker thread with its own database connection, closed afterwards."""

    def run(*args):
        try:
            return work(*args)
        finally:
            connection.close()

    return run


def test_many_annotators_claiming_and_submitting_at_once_fill_every_slot_exactly_once():
    items = [make_ready_item(overlap=OVERLAP) for _ in range(ITEMS)]
    annotators = [make_annotator(f"ann{i}") for i in range(ANNOTATORS)]
    start = threading.Barrier(ANNOTATORS)

    @in_own_connection
    def annotate(index: int) -> list[int]:
        annotator, returned = annotators[index], []
        start.wait()
        while (assignment := services.assignment_claim_next(annotator=annotator)) is not None:
            if index % 4 == 0 and len(returned) % 3 == 0:  # some annotators skip every third item
                services.assignment_skip(assignment=assignment, annotator=annotator, reason="load test skip")
                returned.append(-1)
                continue
            first = services.comparison_submit(assignment=assignment, annotator=annotator, chosen="A", rating="better")
            again = services.comparison_submit(assignment=assignment, annotator=annotator, chosen="A", rating="better")
            assert first.pk == again.pk  # a repeated submit (a different answer would be a Conflict)
            returned.append(first.pk)
        return returned

    with ThreadPoolExecutor(ANNOTATORS) as pool:
        results = list(pool.map(annotate, range(ANNOTATORS)))
    # A thread stops when it finds nothing free, which can happen while a slot is only held by a
    # claim that another thread then skips; a last pass in this thread takes such slots.
    for annotator in annotators:
        while (assignment := services.assignment_claim_next(annotator=annotator)) is not None:
            results.append([services.comparison_submit(assignment=assignment, annotator=annotator, chosen="A", rating="better").pk])

    submitted = [pk for result in results for pk in result if pk != -1]
    assert len(submitted) == len(set(submitted)) == Comparison.objects.count()  # none lost, none doubled
    per_item = Counter(Comparison.objects.values_list("item_id", flat=True))
    assert all(per_item[item.pk] == OVERLAP for item in items)  # every slot filled, none over
    live = Counter(
        Assignment.objects.exclude(status__in=[AssignmentStatus.SKIPPED, AssignmentStatus.EXPIRED]).values_list("item_id", flat=True)
    )
    assert max(live.values()) <= OVERLAP
    assert set(Item.objects.values_list("status", "open_slots")) == {(ItemStatus.DONE, 0)}
    assert sum(result.count(-1) for result in results) > 0  # skips happened and their slots were refilled


def test_two_simultaneous_submits_of_one_assignment_store_one_comparison():
    make_ready_item()
    annotator = make_annotator()
    assignment = services.assignment_claim_next(annotator=annotator)
    start = threading.Barrier(8)

    @in_own_connection
    def submit(_):
        start.wait()
        return services.comparison_submit(assignment=assignment, annotator=annotator, chosen="A", rating="better").pk

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(submit, range(8)))
    assert len(ids) == 1 and Comparison.objects.count() == 1


def test_a_claim_is_one_statement_that_also_loads_what_the_annotator_sees(postgres, django_assert_num_queries, monkeypatch):
    from annotation_site.annotation.demo.guidelines import GUIDELINES

    title, text = GUIDELINES["helpfulness"]
    guideline = services.guideline_publish(kind="helpfulness", title=title, text=text)
    item = make_ready_item()
    annotator = make_annotator()
    annotator.profile  # loaded with the user by token authentication; not part of the claim
    monkeypatch.setitem(services._last_sweep, "at", 1e18)  # no periodic expiry sweep inside this claim
    with django_assert_num_queries(1):
        assignment = services.assignment_claim_next(annotator=annotator)
        shown = (assignment.item.dialogue.turns, assignment.item.sample_a.text, assignment.item.sample_b.text, assignment.guideline)
    assert shown == (item.dialogue.turns, item.sample_a.text, item.sample_b.text, guideline)
    assert (assignment.item_id, assignment.status, assignment.annotator_id) == (item.pk, AssignmentStatus.CLAIMED, annotator.pk)
    item.refresh_from_db()
    assert item.open_slots == 0
    with django_assert_num_queries(1):
        assert services.assignment_claim_next(annotator=annotator).pk == assignment.pk  # the live claim, again
