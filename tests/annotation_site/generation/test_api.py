"""The checkpoint and deployment API: who may use it, and what it does."""
import pytest
import yaml
from rest_framework.test import APIClient

from annotation_site.accounts.services import user_create
from annotation_site.generation.models import Checkpoint, Deployment, Health
from tests.annotation_site.generation.conftest import deploy_vllm, make_checkpoint
from tests.support.vllm_server import MisbehavingServer

pytestmark = pytest.mark.django_db


def _client(role: str | None) -> APIClient:
    client = APIClient()
    if role:
        client.force_authenticate(user_create(username=role, role=role, password="pw-123456"))
    return client


ENDPOINTS = [
    ("get", "/api/checkpoints/"),
    ("post", "/api/checkpoints/"),
    ("post", "/api/checkpoints/register/"),
    ("get", "/api/deployments/"),
    ("post", "/api/deployments/"),
    ("post", "/api/deployments/1/health-check/"),
    ("post", "/api/deployments/1/stop-server/"),
    ("get", "/api/generation/status/"),
    ("post", "/api/generation/fill/"),
]


@pytest.mark.parametrize("method, url", ENDPOINTS)
def test_annotators_are_refused_and_anonymous_users_must_log_in(method, url):
    assert getattr(_client("annotator"), method)(url, {}, format="json").status_code == 403
    assert getattr(_client(None), method)(url, {}, format="json").status_code == 401


@pytest.mark.parametrize("role", ["researcher", "admin"])
def test_researchers_and_admins_add_list_and_change_checkpoints(role, tiny_model_dir):
    client = _client(role)
    created = client.post(
        "/api/checkpoints/", {"name": "base", "path": str(tiny_model_dir), "kind": "base"}, format="json"
    )
    assert created.status_code == 201, created.json()
    listed = client.get("/api/checkpoints/").json()
    assert [c["name"] for c in listed] == ["base"]
    changed = client.patch(f"/api/checkpoints/{created.json()['id']}/", {"notes": "from the paper"}, format="json")
    assert changed.json()["notes"] == "from the paper"
    duplicate = client.post("/api/checkpoints/", {"name": "base", "path": "/x", "kind": "base"}, format="json")
    assert duplicate.status_code == 409 and "exists already" in duplicate.json()["message"]


def test_bad_input_says_what_was_wrong(tiny_model_dir):
    client = _client("researcher")
    bad_kind = client.post("/api/checkpoints/", {"name": "x", "path": "/x", "kind": "dpo"}, format="json")
    assert bad_kind.status_code == 400 and "kind" in bad_kind.json()["fields"]
    base = make_checkpoint(tiny_model_dir)
    no_url = client.post("/api/deployments/", {"checkpoint": base.pk, "engine": "vllm"}, format="json")
    assert no_url.status_code == 400 and "endpoint URL" in no_url.json()["message"]
    missing = client.get("/api/deployments/999/")
    assert missing.status_code == 404


def test_registering_a_run_folder_reads_its_config_and_finds_its_parent(tiny_model_dir, tmp_path):
    base = make_checkpoint(tiny_model_dir, "base")
    run = tmp_path / "sft-run"
    run.mkdir()
    for path in tiny_model_dir.iterdir():
        (run / path.name).write_bytes(path.read_bytes())
    (run / "config.yaml").write_text(yaml.safe_dump({"model": str(tiny_model_dir), "learning_rate": 2e-5, "epochs": 2}))
    client = _client("researcher")
    without_kind = client.post("/api/checkpoints/register/", {"path": str(run)}, format="json")
    assert without_kind.status_code == 400 and "say which kind" in without_kind.json()["message"]
    registered = client.post("/api/checkpoints/register/", {"path": str(run), "kind": "sft"}, format="json").json()
    assert registered["name"] == "sft-run" and registered["parent"] == base.pk and registered["run"] == str(run)
    assert "training_config" not in registered  # what config.yaml holds is not echoed
    assert Checkpoint.objects.get(pk=registered["id"]).training_config["learning_rate"] == 2e-5
    not_a_checkpoint = client.post("/api/checkpoints/register/", {"path": str(tmp_path), "kind": "sft"}, format="json")
    assert not_a_checkpoint.status_code == 400 and "config.json" in not_a_checkpoint.json()["message"]


def test_a_reward_model_is_recognised_from_its_weights(tmp_path):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=1, num_labels=1)
    LlamaForSequenceClassification(config).save_pretrained(tmp_path / "rm")
    client = _client("researcher")
    registered = client.post("/api/checkpoints/register/", {"path": str(tmp_path / "rm")}, format="json")
    assert registered.status_code == 201 and registered.json()["kind"] == "reward_model"
    wrong = client.post("/api/checkpoints/register/", {"path": str(tmp_path / "rm"), "name": "rm2", "kind": "ppo"}, format="json")
    assert wrong.status_code == 400 and "reward model" in wrong.json()["message"]
    deploy = client.post("/api/deployments/", {"checkpoint": registered.json()["id"], "engine": "local"}, format="json")
    assert deploy.status_code == 400 and "cannot generate" in deploy.json()["message"]


def test_deploying_checking_and_disabling_a_vllm_endpoint(tiny_model_dir, celery_eager, django_capture_on_commit_callbacks):
    base = make_checkpoint(tiny_model_dir)
    client = _client("admin")

    def check(deployment_id: int):
        """The request only asks a worker (here: eagerly, after commit) and answers 202 at once."""
        with django_capture_on_commit_callbacks() as callbacks:
            asked = client.post(f"/api/deployments/{deployment_id}/health-check/")
        assert asked.status_code == 202 and len(callbacks) == 1
        callbacks[0]()
        return client.get(f"/api/deployments/{deployment_id}/").json()

    with MisbehavingServer("ok", model="tiny") as peer:
        created = client.post(
            "/api/deployments/",
            {"checkpoint": base.pk, "engine": "vllm", "endpoint_url": peer.base_url + "/", "served_model_name": "tiny"},
            format="json",
        ).json()
        assert created["endpoint_url"] == peer.base_url and created["health"] == Health.UNKNOWN
        assert check(created["id"])["health"] == Health.HEALTHY
    down = check(created["id"])
    assert down["health"] == Health.UNHEALTHY
    assert down["last_error"] == "No OpenAI-compatible server serving tiny answered at this URL."
    disabled = client.patch(f"/api/deployments/{created['id']}/", {"enabled": False}, format="json").json()
    assert disabled["enabled"] is False
    stop = client.post(f"/api/deployments/{created['id']}/stop-server/")
    assert stop.status_code == 400 and "did not launch" in stop.json()["message"]


def test_launching_a_server_is_handed_to_a_worker_after_commit(tiny_model_dir, django_capture_on_commit_callbacks, monkeypatch):
    from annotation_site.generation import tasks

    launched = []
    monkeypatch.setattr(tasks.launch_deployment_server, "delay", lambda *args, **kwargs: launched.append((args, kwargs)))
    base = make_checkpoint(tiny_model_dir)
    with django_capture_on_commit_callbacks(execute=True):
        response = _client("researcher").post(
            "/api/deployments/", {"checkpoint": base.pk, "engine": "vllm", "launch": True, "port": 8190}, format="json"
        )
    assert response.status_code == 201
    deployment = Deployment.objects.get()
    assert launched == [((deployment.pk,), {"port": 8190, "enforce_eager": False})]
    assert deployment.served_model_name == "tiny-base" and deployment.endpoint_url == ""


def test_the_status_shows_ready_and_waiting_items_per_guideline(tiny_model_dir):
    from tests.annotation_site.generation.conftest import queue_prompts

    queue_prompts(2, guideline_kind="safety")
    deploy_vllm("http://127.0.0.1:8199/v1", "m")
    status = _client("researcher").get("/api/generation/status/").json()
    safety = next(g for g in status["guidelines"] if g["guideline_kind"] == "safety")
    assert (safety["ready"], safety["needs_samples"], safety["short_by"]) == (0, 2, 10)
    assert status["deployments_usable"] == 1


@pytest.mark.parametrize("role", ["admin", "researcher"])
def test_admin_pages_list_checkpoints_and_deployments(client, role):
    deploy_vllm("http://127.0.0.1:8199/v1", "m")
    client.force_login(user_create(username="boss", role=role, password="pw-123456"))
    for url in ("/admin/generation/checkpoint/", "/admin/generation/deployment/"):
        page = client.get(url)
        assert page.status_code == 200 and "served" in page.content.decode()
    assert Checkpoint.objects.count() == 1


def test_annotators_have_no_admin_pages(client):
    client.force_login(user_create(username="ann", role="annotator", password="pw-123456"))
    assert client.get("/admin/generation/deployment/").status_code == 302  # to the admin login


def test_admins_see_the_generation_claims_page(client):
    client.force_login(user_create(username="boss", role="admin", password="pw-123456"))
    assert client.get("/admin/generation/generationclaim/").status_code == 200
