"""Deployment endpoints are configuration the operator allows (SERVING_ALLOWED_HOSTS), and the
health check runs on a worker and stores a short status, never what the endpoint sent (issue 11)."""
import pytest
from rest_framework.test import APIClient

from annotation_site.accounts.services import user_create
from annotation_site.generation import tasks
from annotation_site.generation.engines import engine_for
from annotation_site.generation.models import Deployment, Health
from serving.endpoints import EndpointRefused
from tests.annotation_site.generation.conftest import deploy_vllm, make_checkpoint
from tests.support.vllm_server import INTERNAL_SECRET, MisbehavingServer

pytestmark = pytest.mark.django_db

PROBES = [
    "http://169.254.169.254/latest/meta-data/iam/",
    "http://[fe80::1]:8000/v1",
    "http://metadata.google.internal/computeMetadata/v1",
    "http://admin:hunter2@127.0.0.1:8000/v1",
    "http://2130706433:6379/v1",
    "http://10.0.0.7:5432/v1",
    "gopher://127.0.0.1:6379/",
]


@pytest.fixture
def api() -> APIClient:
    client = APIClient()
    client.force_authenticate(user_create(username="researcher", role="researcher", password="pw-123456"))
    return client


@pytest.mark.parametrize("url", PROBES)
def test_metadata_link_local_credentials_numeric_and_unlisted_endpoints_are_refused(api, tiny_model_dir, url):
    checkpoint = make_checkpoint(tiny_model_dir)
    created = api.post("/api/deployments/", {"checkpoint": checkpoint.pk, "engine": "vllm", "endpoint_url": url}, format="json")
    assert created.status_code == 400 and created.json()["field"] == "endpoint_url"
    assert not Deployment.objects.exists()
    deployment = deploy_vllm("http://127.0.0.1:8100/v1", "m", name="fine")
    changed = api.patch(f"/api/deployments/{deployment.pk}/", {"endpoint_url": url}, format="json")
    assert changed.status_code == 400 and changed.json()["field"] == "endpoint_url"
    deployment.refresh_from_db()
    assert deployment.endpoint_url == "http://127.0.0.1:8100/v1"


def test_an_operator_allows_other_hosts_through_serving_allowed_hosts(api, tiny_model_dir, settings):
    checkpoint = make_checkpoint(tiny_model_dir)
    settings.SERVING_ALLOWED_HOSTS = ["10.0.0.0/8"]
    created = api.post("/api/deployments/", {"checkpoint": checkpoint.pk, "engine": "vllm", "endpoint_url": "http://10.0.0.7:8000/v1"}, format="json")
    assert created.status_code == 201
    loopback = api.post("/api/deployments/", {"checkpoint": checkpoint.pk, "engine": "vllm", "endpoint_url": "http://127.0.0.1:8000/v1"}, format="json")
    assert loopback.status_code == 400 and "127.0.0.1 is not an allowed serving host" in loopback.json()["message"]


def test_the_health_check_runs_on_a_worker_and_never_echoes_what_the_endpoint_sent(
    api, celery_eager, django_capture_on_commit_callbacks
):
    with MisbehavingServer("internal_service") as service:
        deployment = deploy_vllm(service.base_url, "m")
        with django_capture_on_commit_callbacks() as callbacks:
            asked = api.post(f"/api/deployments/{deployment.pk}/health-check/")
        assert asked.status_code == 202 and asked.json()["health"] == Health.UNKNOWN
        assert service.requests == []  # nothing was fetched inside the web request
        for callback in callbacks:
            callback()  # the worker's turn (eager Celery)
        assert service.requests == ["GET /v1/models"]
    shown = api.get(f"/api/deployments/{deployment.pk}/")
    assert shown.json()["health"] == Health.UNHEALTHY
    assert shown.json()["last_error"] == "No OpenAI-compatible server serving m answered at this URL."
    assert INTERNAL_SECRET not in shown.content.decode()


def test_a_health_check_asked_while_the_broker_is_down_still_answers(api, monkeypatch, django_capture_on_commit_callbacks):
    def broker_down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(tasks.check_deployment_health, "delay", broker_down)
    deployment = deploy_vllm("http://127.0.0.1:8100/v1", "m")
    with django_capture_on_commit_callbacks(execute=True):
        asked = api.post(f"/api/deployments/{deployment.pk}/health-check/")
    assert asked.status_code == 202


def test_an_endpoint_changed_past_the_site_is_refused_by_the_worker_without_a_request():
    deployment = deploy_vllm("http://169.254.169.254/latest", "m")  # written through the ORM
    checked = tasks.check_deployment_health(deployment.pk)
    assert checked["health"] == Health.UNHEALTHY
    deployment.refresh_from_db()
    assert deployment.last_error.startswith("Not checked: Link-local, metadata and unspecified addresses")
    with pytest.raises(EndpointRefused):
        engine_for(deployment)  # and generation never sends it a prompt


def test_the_admin_form_refuses_an_endpoint_outside_the_allowed_hosts(client, tiny_model_dir):
    client.force_login(user_create(username="admin", role="admin", password="pw-123456"))
    checkpoint = make_checkpoint(tiny_model_dir)
    form = {"checkpoint": checkpoint.pk, "engine": "vllm", "served_model_name": "m", "enabled": "on"}
    refused = client.post("/admin/generation/deployment/add/", {**form, "endpoint_url": "http://169.254.169.254/latest"})
    assert refused.status_code == 200 and "never serving endpoints" in refused.content.decode()
    added = client.post("/admin/generation/deployment/add/", {**form, "endpoint_url": "http://127.0.0.1:8100/v1/"})
    assert added.status_code == 302 and Deployment.objects.get().endpoint_url == "http://127.0.0.1:8100/v1"
