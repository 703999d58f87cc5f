"""Nothing of a closed batch changes: not through the admin, the API, the ORM or raw SQL.

Comparisons and demonstrations are closed into a batch by the real `batch_close`; each test then
tries one way of changing or deleting them and checks the row is as it was.
"""
import pytest
from django.db import IntegrityError, connection, transaction
from rest_framework.test import APIClient

from annotation_site.annotation.models import ClosedBatchError, Comparison, Demonstration, Sample
from annotation_site.batches import services as batches
from tests.annotation_site.batches.factories import make_comparison, make_demonstration, make_user
from tests.annotation_site.annotation.factories import make_annotator, make_demonstration_item, make_ready_item

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def export_root(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"


def closed(*rows):
    batch, _ = batches.batch_close(enqueue_export=False)
    for row in rows:
        row.refresh_from_db()
        assert row.batch_id == batch.id
    return batch


def snapshot(row) -> dict:
    return {field.attname: getattr(type(row).objects.get(pk=row.pk), field.attname) for field in row._meta.fields}


# --- ORM -------------------------------------------------------------------------------------------


def test_a_comparison_of_a_closed_batch_cannot_be_saved_or_deleted():
    comparison = make_comparison()
    batch = closed(comparison)
    before = snapshot(comparison)
    comparison.rating = "slightly_better"
    with pytest.raises(ClosedBatchError, match=rf"comparison {comparison.pk} \(batch {batch.week}\) cannot be changed"):
        comparison.save()
    with pytest.raises(ClosedBatchError, match="cannot be deleted: it belongs to a closed batch"):
        comparison.delete()
    assert snapshot(comparison) == before


def test_a_demonstration_of_a_closed_batch_cannot_be_saved_or_deleted():
    demonstration = make_demonstration()
    closed(demonstration)
    demonstration.text = "A better ideal answer."
    with pytest.raises(ClosedBatchError, match="cannot be changed"):
        demonstration.save()
    with pytest.raises(ClosedBatchError, match="cannot be deleted"):
        demonstration.delete()
    assert Demonstration.objects.get(pk=demonstration.pk).text == "The ideal answer."


def test_an_instance_read_before_the_close_cannot_be_saved_after_it():
    comparison = make_comparison()
    stale = Comparison.objects.get(pk=comparison.pk)
    closed(comparison)
    assert stale.batch_id is None  # it does not know
    stale.rating = "slightly_better"
    with pytest.raises(ClosedBatchError):
        stale.save()
    with pytest.raises(ClosedBatchError):
        stale.delete()


def test_querysets_refuse_to_update_or_delete_rows_of_a_closed_batch():
    batched, demonstration = make_comparison(), make_demonstration()
    batch = closed(batched, demonstration)
    open_row = make_comparison()  # after the close: it waits for the next batch
    everything = Comparison.objects.all()
    with pytest.raises(ClosedBatchError, match=f"batch {batch.week}"):
        everything.update(rating="slightly_better")
    with pytest.raises(ClosedBatchError):
        everything.delete()
    with pytest.raises(ClosedBatchError):
        batch.comparisons.update(rating="slightly_better")
    batched.rating = "slightly_better"
    with pytest.raises(ClosedBatchError), transaction.atomic():  # bulk_update's own block fails with it
        Comparison.objects.bulk_update([batched], ["rating"])
    with pytest.raises(ClosedBatchError):
        Demonstration.objects.all().update(text="changed")
    assert set(Comparison.objects.values_list("rating", flat=True)) == {"better"}
    assert Comparison.objects.count() == 2 and Demonstration.objects.get().text == "The ideal answer."
    assert Comparison.objects.get(pk=open_row.pk).batch_id is None


def test_rows_not_yet_in_a_batch_can_still_be_changed_and_deleted():
    comparison = make_comparison()
    comparison.rating = "slightly_better"
    comparison.save()
    Comparison.objects.filter(pk=comparison.pk).update(rating="better")
    comparison.delete()
    make_demonstration().delete()
    assert not Comparison.objects.exists() and not Demonstration.objects.exists()


def test_the_samples_and_dialogues_a_closed_batch_exported_cannot_be_saved_or_deleted():
    comparison, demonstration = make_comparison(), make_demonstration()
    closed(comparison, demonstration)
    for row in (comparison.chosen, comparison.rejected, comparison.item.dialogue, demonstration.item.dialogue):
        with pytest.raises(ClosedBatchError, match=rf"{row._meta.verbose_name} {row.pk} cannot be changed: closed batch"):
            row.save()
        with pytest.raises(ClosedBatchError, match="cannot be deleted"):
            row.delete()


def test_samples_and_dialogues_no_closed_batch_exported_can_still_be_edited():
    comparison = make_comparison()
    comparison.chosen.text = "Edited before the close."
    comparison.chosen.save()
    comparison.item.dialogue.save()
    assert Sample.objects.get(pk=comparison.chosen_id).text == "Edited before the close."


# --- Admin -----------------------------------------------------------------------------------------


def admin_client(client):
    client.force_login(make_user("admin"))
    return client


def test_the_admin_delete_action_refuses_a_selection_with_a_closed_row_and_says_why(client):
    batched = make_comparison()
    batch = closed(batched)
    unbatched = make_comparison()
    page = admin_client(client).post(
        "/admin/annotation/comparison/",
        {"action": "delete_selected", "_selected_action": [batched.pk, unbatched.pk], "post": "yes"},
        follow=True,
    )
    assert page.status_code == 200
    text = page.content.decode()
    assert "Nothing was deleted." in text and f"comparison {batched.pk} (batch {batch.week})" in text
    assert Comparison.objects.count() == 2


def test_the_admin_delete_action_still_deletes_rows_that_are_in_no_batch(client):
    closed(make_comparison())
    unbatched = make_comparison()
    admin = admin_client(client)
    confirm = admin.post(
        "/admin/annotation/comparison/", {"action": "delete_selected", "_selected_action": [unbatched.pk]}
    )
    assert confirm.status_code == 200 and "Are you sure" in confirm.content.decode()
    admin.post(
        "/admin/annotation/comparison/",
        {"action": "delete_selected", "_selected_action": [unbatched.pk], "post": "yes"},
    )
    assert not Comparison.objects.filter(pk=unbatched.pk).exists() and Comparison.objects.count() == 1


@pytest.mark.parametrize("make_row, url", [(make_comparison, "comparison"), (make_demonstration, "demonstration")])
def test_the_admin_shows_a_closed_row_read_only_and_refuses_its_delete_page(client, make_row, url):
    row = make_row()
    batch = closed(row)
    admin = admin_client(client)
    change = admin.get(f"/admin/annotation/{url}/{row.pk}/change/")
    text = change.content.decode()
    assert change.status_code == 200 and f"In closed batch {batch.week}" in text
    assert 'name="_save"' not in text and f"/{row.pk}/delete/" not in text
    refused = admin.post(f"/admin/annotation/{url}/{row.pk}/delete/", {"post": "yes"}, follow=True)
    assert "Nothing was deleted." in refused.content.decode() and "belongs to a closed batch" in refused.content.decode()
    assert type(row).objects.filter(pk=row.pk).exists()


def test_the_admin_shows_an_exported_sample_read_only(client):
    comparison = make_comparison()
    batch = closed(comparison)
    page = admin_client(client).get(f"/admin/annotation/sample/{comparison.chosen_id}/change/")
    text = page.content.decode()
    assert page.status_code == 200 and f"Exported by closed batch {batch.week}" in text and 'name="_save"' not in text


# --- API -------------------------------------------------------------------------------------------


def test_submitting_again_through_the_api_after_the_close_changes_nothing():
    make_ready_item()
    make_demonstration_item()
    api = APIClient()
    api.force_authenticate(make_annotator())
    comparison_assignment = api.post("/api/annotate/next/", {}, format="json").json()["assignment"]
    first = api.post(
        f"/api/assignments/{comparison_assignment['id']}/comparison/", {"chosen": "B", "rating": "better"}, format="json"
    ).json()
    demonstration_assignment = api.post("/api/annotate/next/", {}, format="json").json()["assignment"]
    api.post(
        f"/api/assignments/{demonstration_assignment['id']}/demonstration/", {"text": "First answer."}, format="json"
    )
    comparison, demonstration = Comparison.objects.get(), Demonstration.objects.get()
    closed(comparison, demonstration)
    before = snapshot(comparison), snapshot(demonstration)
    again = api.post(
        f"/api/assignments/{comparison_assignment['id']}/comparison/", {"chosen": "A", "rating": "slightly_better"},
        format="json",
    )
    # A different answer is refused with the one kept (issue 16's 409); nothing in the batch moves.
    assert again.status_code == 409
    assert again.json()["stored"]["comparison"] == first["id"] and again.json()["stored"]["chosen"] == "B"
    api.post(
        f"/api/assignments/{demonstration_assignment['id']}/demonstration/", {"text": "Second answer."}, format="json"
    )
    assert (snapshot(comparison), snapshot(demonstration)) == before


# --- PostgreSQL ------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", ["annotation_comparison", "annotation_demonstration"])
def test_postgresql_refuses_raw_updates_and_deletes_of_closed_rows(postgres, table):
    batched = make_comparison() if table == "annotation_comparison" else make_demonstration()
    closed(batched)
    with connection.cursor() as cursor:
        for statement in (f"UPDATE {table} SET source = 'edited' WHERE id = %s", f"DELETE FROM {table} WHERE id = %s"):
            with pytest.raises(IntegrityError, match=f"{table} row {batched.pk} belongs to closed batch"):
                with transaction.atomic():
                    cursor.execute(statement, [batched.pk])
        cursor.execute(f"SELECT source FROM {table} WHERE id = %s", [batched.pk])
        assert cursor.fetchone() == ("annotation",)


def test_postgresql_lets_rows_outside_batches_change_and_be_closed_into_one(postgres):
    comparison = make_comparison()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE annotation_comparison SET rating = 'slightly_better' WHERE id = %s", [comparison.pk])
    closed(comparison)  # the close itself is an UPDATE of batch_id from NULL
    other = make_comparison()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM annotation_comparison WHERE id = %s", [other.pk])
    assert list(Comparison.objects.values_list("pk", "rating")) == [(comparison.pk, "slightly_better")]


def test_postgresql_refuses_raw_edits_of_the_text_a_closed_batch_exported(postgres):
    comparison, demonstration = make_comparison(), make_demonstration()
    closed(comparison, demonstration)
    edits = [
        ("UPDATE annotation_sample SET text = 'edited' WHERE id = %s", comparison.chosen_id),
        ("UPDATE annotation_sample SET sampling_params = '{}' WHERE id = %s", comparison.rejected_id),
        ("UPDATE annotation_dialogue SET turns = '[]' WHERE id = %s", comparison.item.dialogue_id),
        ("UPDATE annotation_dialogue SET turns = '[]' WHERE id = %s", demonstration.item.dialogue_id),
    ]
    with connection.cursor() as cursor:
        for statement, pk in edits:
            with pytest.raises(IntegrityError, match=f"row {pk} is exported by a closed batch"):
                with transaction.atomic():
                    cursor.execute(statement, [pk])
        # What the files do not hold may change, e.g. a deleted checkpoint's samples losing their link.
        cursor.execute("UPDATE annotation_sample SET checkpoint_id = NULL WHERE id = %s", [comparison.chosen_id])
    assert Sample.objects.get(pk=comparison.chosen_id).text == comparison.chosen.text
