"""The audit log records who closed, exported and downloaded batches, registered checkpoints,
created and switched deployments, and changed users and their roles; only admins read it."""
from __future__ import annotations

import json

import pytest
from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation_site.accounts.services import user_create
from annotation_site.batches import services as batch_services
from annotation_site.batches.models import Batch
from annotation_site.generation.models import Checkpoint, Deployment
from tests.annotation_site.batches.factories import make_mixed_week

pytestmark = pytest.mark.django_db

LOG = "/admin/auditlog/logentry/"


@pytest.fixture(autouse=True)
def roots(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.CHECKPOINT_ROOT = tmp_path / "checkpoints"


@pytest.fixture
def admin():
    return user_create(username="boss", role="admin", password="pw-123456")


@pytest.fixture
def enqueued_exports(monkeypatch) -> list[int]:
    """Exports handed to the broker (outside the system under test): recorded, not sent."""
    from annotation_site.batches.tasks import batch_export

    sent: list[int] = []
    monkeypatch.setattr(batch_export, "delay", lambda batch_id, force=False: sent.append(batch_id))
    return sent


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def entries(obj, event: str | None = None):
    found = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(obj), object_pk=str(obj.pk))
    return [e for e in found if event is None or (e.additional_data or {}).get("event") == event]


def closed_and_exported_batch() -> Batch:
    make_mixed_week(annotators=2, per_annotator=2)
    batch, _ = batch_services.batch_close()
    return batch_services.batch_export(batch_id=batch.id)


def test_closing_a_batch_through_the_api_with_a_token_records_the_admin_as_actor(admin):
    make_mixed_week(annotators=1, per_annotator=2)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin).key}")
    response = client.post("/api/batches/close/", {}, format="json")
    assert response.status_code == 201, response.json()
    batch = Batch.objects.get()
    [entry] = entries(batch, "batch.close")
    assert entry.actor == admin and entry.object_repr == str(batch) and entry.remote_addr == "127.0.0.1"
    assert entry.additional_data["counts"]["comparisons"] == batch.counts["comparisons"] == 2
    assert client.post("/api/batches/close/", {}, format="json").status_code == 200
    assert len(entries(batch, "batch.close")) == 1  # the second close changed nothing


def test_the_weekly_close_and_the_export_by_a_worker_are_recorded_without_an_actor():
    batch = closed_and_exported_batch()
    [close] = entries(batch, "batch.close")
    [export] = entries(batch, "batch.export")
    assert close.actor is None and export.actor is None
    assert export.additional_data["path"] == batch.export_path and export.additional_data["attempt"] == 1


def test_a_reexport_from_the_admin_records_who_asked(client, admin, enqueued_exports):
    batch = closed_and_exported_batch()
    client.force_login(admin)
    client.post("/admin/batches/batch/", {"action": "reexport", "_selected_action": [batch.id]})
    [entry] = entries(batch, "batch.reexport")
    assert entry.actor == admin and enqueued_exports == [batch.id]


def test_each_download_of_a_batch_is_recorded_as_an_access_by_its_reader(client):
    batch = closed_and_exported_batch()
    researcher = user_create(username="res", role="researcher", password="pw-123456")
    client.force_login(researcher)
    response = client.get(reverse("batches:download", args=[batch.id]))
    assert response.status_code == 200
    b"".join(response.streaming_content)
    [entry] = entries(batch, "batch.download")
    assert entry.actor == researcher and entry.action == LogEntry.Action.ACCESS


def test_writing_a_batch_copy_with_the_command_is_recorded(tmp_path):
    from django.core.management import call_command

    batch = closed_and_exported_batch()
    call_command("export_batch", batch.week, "--out", str(tmp_path / "copy"))
    [entry] = entries(batch, "batch.export_copy")
    assert entry.additional_data["path"] == str(tmp_path / "copy") and entry.actor is None


def test_registering_a_checkpoint_is_recorded_with_the_researcher(settings):
    folder = settings.CHECKPOINT_ROOT / "rm-w48"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForSequenceClassification"]}))
    researcher = user_create(username="res", role="researcher", password="pw-123456")
    response = api_as(researcher).post("/api/checkpoints/register/", {"path": str(folder)}, format="json")
    assert response.status_code == 201, response.json()
    [entry] = entries(Checkpoint.objects.get())
    assert entry.action == LogEntry.Action.CREATE and entry.actor == researcher


def test_creating_disabling_and_enabling_a_deployment_are_recorded_but_health_checks_are_not(admin):
    checkpoint = Checkpoint.objects.create(name="sft-w48", path="/ckpt/sft-w48", kind="sft")
    client = api_as(admin)
    created = client.post(
        "/api/deployments/", {"checkpoint": checkpoint.pk, "engine": "vllm", "endpoint_url": "http://127.0.0.1:8100/v1"},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.json()
    deployment = Deployment.objects.get()
    for enabled in (False, True):
        assert client.patch(f"/api/deployments/{deployment.pk}/", {"enabled": enabled}, format="json").status_code == 200
    Deployment.objects.get().save()  # the health checker's bookkeeping saves it too: nothing to record
    logged = sorted(entries(deployment), key=lambda e: e.timestamp)
    assert [e.action for e in logged] == [LogEntry.Action.CREATE, LogEntry.Action.UPDATE, LogEntry.Action.UPDATE]
    assert [e.changes_dict.get("enabled") for e in logged[1:]] == [["True", "False"], ["False", "True"]]
    assert all(e.actor == admin for e in logged)


def test_a_role_change_in_the_admin_is_recorded_with_the_admin_and_the_group(client, admin):
    user = user_create(username="ann", role="annotator", password="pw-123456")
    client.force_login(admin)
    researcher_group = Group.objects.get(name="researcher")
    response = client.post(f"/admin/auth/user/{user.pk}/change/", {
        "username": "ann", "is_active": "on", "groups": [researcher_group.pk],
        "date_joined_0": "2026-01-05", "date_joined_1": "09:00:00",
    })  # fmt: skip
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    role_changes = [e for e in entries(user) if "groups" in (e.changes or {}) and e.actor == admin]
    assert sorted((e.changes["groups"]["operation"], e.changes["groups"]["objects"]) for e in role_changes) == [
        ("add", ["researcher"]), ("delete", ["annotator"]),
    ]  # fmt: skip


def test_a_new_user_and_a_password_reset_are_recorded_without_the_password_hash():
    user = user_create(username="ann", role="annotator", password="pw-123456")
    user.set_password("another-password")
    user.save()
    logged = sorted(entries(user), key=lambda e: e.timestamp)
    assert logged[0].action == LogEntry.Action.CREATE
    assert ["groups" in (e.changes or {}) for e in logged].count(True) == 1
    [reset] = [e for e in logged if "password" in (e.changes or {}) and e.action == LogEntry.Action.UPDATE]
    assert reset.changes["password"] == ["(hidden)", "(hidden)"]
    assert get_user_model().objects.get().password not in json.dumps([e.changes for e in logged])


def test_admins_read_the_log_but_cannot_change_or_delete_it(client, admin):
    user_create(username="ann", role="annotator", password="pw-123456")
    entry = LogEntry.objects.first()
    client.force_login(admin)
    assert client.get(LOG).status_code == 200 and "ann" in client.get(LOG).content.decode()
    assert client.get(f"{LOG}{entry.pk}/change/").status_code == 200
    assert client.post(f"{LOG}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"{LOG}{entry.pk}/change/", {}).status_code == 403
    assert LogEntry.objects.filter(pk=entry.pk).exists()


@pytest.mark.parametrize("role, refused", [("researcher", 403), ("annotator", 302)])
def test_researchers_and_annotators_cannot_read_the_log(client, role, refused):
    client.force_login(user_create(username=role, role=role, password="pw-123456"))
    response = client.get(LOG)
    assert response.status_code == refused and "log entr" not in response.content.decode().lower()
