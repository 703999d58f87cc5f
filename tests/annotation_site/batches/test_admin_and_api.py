"""Who may see, close, re-export and download batches, through the admin, the API and the download page."""
from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation_site.batches import services
from annotation_site.batches.models import Batch, BatchState
from tests.annotation_site.batches.factories import make_comparison, make_mixed_week, make_user

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/batches/batch/"
CLOSE_NOW = "/admin/batches/batch/close-now/"


@pytest.fixture(autouse=True)
def export_root(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"
    return settings.EXPORT_ROOT


def logged_in(client, role):
    user = make_user(role)
    client.force_login(user)
    return client


def exported_batch() -> Batch:
    make_mixed_week(annotators=2, per_annotator=3)
    batch, _ = services.batch_close()
    return services.batch_export(batch_id=batch.id)


def test_admins_see_the_batch_list_with_counts_state_progress_and_close_now(client):
    make_mixed_week(annotators=1, per_annotator=2)
    admin = logged_in(client, "admin")
    before = admin.get(CHANGELIST).content.decode()
    assert 'id="batch-close-now"' in before and "data-confirm=" in before  # a close asks first
    batch = exported_batch()
    make_comparison()  # waiting for the next batch
    page = admin.get(CHANGELIST)
    html = page.content.decode()
    assert page.status_code == 200
    assert batch.week in html and "Exported (closed early)" in html
    # The week was closed early: nothing to close now, and the page says where later comparisons go.
    assert 'id="batch-close-now"' not in html
    next_week = services.week_of(timezone.now() + dt.timedelta(days=7))
    assert "Waiting for the next batch: 1 comparisons" in html and f"into batch <strong>{next_week}</strong>" in html
    assert f'data-url="{reverse("api-batch-detail", args=[batch.id])}"' in html
    assert 'value="1.0000"' in html and "batches/batch_progress.js" in html
    assert reverse("batches:download", args=[batch.id]) in html


def test_the_batch_page_shows_counts_as_a_table_and_a_download_link_without_save_buttons(client):
    batch = exported_batch()
    html = logged_in(client, "admin").get(reverse("admin:batches_batch_change", args=[batch.id])).content.decode()
    assert '<table class="batch-counts">' in html and "<th>guideline: helpfulness</th>" in html
    assert '{"' not in html.split('<table class="batch-counts">')[1].split("</table>")[0]
    assert reverse("batches:download", args=[batch.id]) in html
    assert 'name="_save"' not in html


def test_researchers_see_the_list_but_cannot_close(client):
    make_comparison()
    researcher = logged_in(client, "researcher")
    page = researcher.get(CHANGELIST)
    assert page.status_code == 200 and 'id="batch-close-now"' not in page.content.decode()
    assert researcher.post(CLOSE_NOW).status_code == 403
    assert not Batch.objects.exists()


def test_annotators_are_kept_out_of_the_batch_admin(client):
    page = logged_in(client, "annotator").get(CHANGELIST)
    assert page.status_code == 302 and "/admin/login/" in page["Location"]


def test_close_now_in_the_admin_closes_the_week_and_exports_it(client, celery_eager, django_capture_on_commit_callbacks):
    make_mixed_week(annotators=2, per_annotator=2)
    admin = logged_in(client, "admin")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin.post(CLOSE_NOW)
    assert len(callbacks) == 1  # the export is enqueued only once the close has committed
    assert response.status_code == 302 and response["Location"] == CHANGELIST
    batch = Batch.objects.get()
    assert batch.counts["comparisons"] == 4 and batch.closed_early
    assert batch.state == BatchState.EXPORTED and Path(batch.export_path).is_dir()
    page = admin.get(CHANGELIST)
    assert f"Closed batch {batch.week} with 4 comparisons" in page.content.decode()
    assert admin.get(CLOSE_NOW).status_code == 405


def test_reexport_action_writes_the_batch_again(client, celery_eager):
    batch = exported_batch()
    before = (Path(batch.export_path) / "manifest.json").read_bytes()
    admin = logged_in(client, "admin")
    response = admin.post(CHANGELIST, {"action": "reexport", "_selected_action": [batch.id]}, follow=True)
    assert f"Export of batch {batch.week} started." in response.content.decode()
    batch.refresh_from_db()
    assert batch.export_attempts == 2 and batch.state == BatchState.EXPORTED
    assert (Path(batch.export_path) / "manifest.json").read_bytes() == before


def test_download_streams_a_zip_of_the_batch_folder(client):
    batch = exported_batch()
    response = logged_in(client, "researcher").get(reverse("batches:download", args=[batch.id]))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == f'attachment; filename="batch-{batch.week}.zip"'
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.testzip() is None
    folder = Path(batch.export_path)
    assert sorted(archive.namelist()) == sorted(f"{batch.week}/{p.name}" for p in folder.iterdir())
    for path in folder.iterdir():
        assert archive.read(f"{batch.week}/{path.name}") == path.read_bytes()


def test_download_is_refused_to_annotators_and_missing_until_exported(client):
    make_comparison()
    batch, _ = services.batch_close()
    url = reverse("batches:download", args=[batch.id])
    assert logged_in(client, "annotator").get(url).status_code == 403
    client.logout()
    assert logged_in(client, "admin").get(url).status_code == 404
    client.logout()
    assert client.get(url).status_code == 302  # anonymous: to the login page


def test_the_api_lists_batches_for_admins_and_researchers_only(client):
    batch = exported_batch()
    listing = logged_in(client, "researcher").get("/api/batches/")
    assert listing.status_code == 200 and listing.json()[0]["week"] == batch.week
    detail = client.get(f"/api/batches/{batch.id}/").json()
    assert detail["export_progress"] == 1.0 and detail["download_url"] == reverse("batches:download", args=[batch.id])
    assert client.post("/api/batches/close/").status_code == 403
    client.logout()
    assert logged_in(client, "annotator").get("/api/batches/").status_code == 403
    client.logout()
    assert client.get("/api/batches/").status_code == 401
    assert client.get("/api/batches/999/").status_code == 401


def test_admins_close_through_the_api_and_a_second_close_returns_the_same_batch(client):
    make_comparison()
    admin = logged_in(client, "admin")
    first = admin.post("/api/batches/close/", {}, content_type="application/json")
    assert first.status_code == 201 and first.json()["counts"]["comparisons"] == 1
    second = admin.post("/api/batches/close/", {"week": first.json()["week"]}, content_type="application/json")
    assert second.status_code == 200 and second.json()["id"] == first.json()["id"]
    bad = admin.post("/api/batches/close/", {"week": "48"}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["fields"]["week"] == ["Write the week like 2026-W48."]
    missing = admin.get("/api/batches/999/")
    assert missing.status_code == 404 and 'no batch "999"' in missing.json()["message"]


def test_reexport_is_refused_while_an_export_is_running(client):
    make_comparison()
    batch, _ = services.batch_close()
    Batch.objects.filter(pk=batch.pk).update(state=BatchState.EXPORTING, export_heartbeat_at=services.timezone.now())
    response = logged_in(client, "admin").post(f"/api/batches/{batch.id}/export/")
    assert response.status_code == 409 and "being exported right now" in response.json()["message"]
