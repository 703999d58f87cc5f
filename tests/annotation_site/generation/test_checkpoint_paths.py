"""Checkpoint paths given on the site resolve (symlinks too) inside the checkpoint roots, with one
message for every refusal; registering does not echo config.yaml (issue 11)."""
import json
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from rest_framework.test import APIClient

from annotation_site.accounts.services import user_create
from annotation_site.generation.models import Checkpoint

pytestmark = pytest.mark.django_db

REFUSED = "Not an available checkpoint: give a checkpoint folder inside the checkpoint roots"


@pytest.fixture
def root(settings, tmp_path) -> Path:
    """The only checkpoint root of these tests."""
    settings.CHECKPOINT_ROOT = tmp_path / "checkpoints"
    settings.CHECKPOINT_ROOTS = []
    settings.CHECKPOINT_ROOT.mkdir()
    return settings.CHECKPOINT_ROOT.resolve()


@pytest.fixture
def outside(tiny_model_dir) -> Path:
    """A checkpoint folder outside every root, holding a config.yaml with a secret in it."""
    folder = Path(tempfile.mkdtemp(prefix="outside-root-"))
    shutil.copytree(tiny_model_dir, folder / "model")
    (folder / "model" / "config.yaml").write_text(yaml.safe_dump({"hub_token": "hf_secret_outside"}))
    yield folder / "model"
    shutil.rmtree(folder)


@pytest.fixture
def api() -> APIClient:
    client = APIClient()
    client.force_authenticate(user_create(username="researcher", role="researcher", password="pw-123456"))
    return client


def attempts(root: Path, outside: Path) -> list[str]:
    (root / "escape").symlink_to(outside)
    return [
        str(outside),  # absolute, outside
        str(root / ".." / outside.relative_to("/")),  # .. out of the root
        f"{root}/../../../../../../{outside}",
        str(root / "escape"),  # a symlink inside the root pointing outside
        str(root / "no-such-checkpoint"),  # missing inside the root
        str(outside.parent / "no-such-checkpoint"),  # missing outside
        "~nosuchuser/x",
        "x" * 300,  # a path component longer than the file system allows
        "/etc",
        "",
    ]


@pytest.mark.parametrize("endpoint, extra", [("/api/checkpoints/register/", {"kind": "sft"}), ("/api/checkpoints/", {"kind": "base"})])
def test_paths_outside_the_roots_missing_or_odd_get_one_message(api, root, outside, endpoint, extra):
    for number, path in enumerate(attempts(root, outside)):
        response = api.post(endpoint, {"name": f"c{number}", "path": path, **extra}, format="json")
        assert response.status_code == 400, path
        body = response.json()
        message = body["message"] if "message" in body and body.get("error") != "invalid" else json.dumps(body)
        assert REFUSED in message or (path == "" and "path" in body["fields"]), (path, body)
        assert "hf_secret_outside" not in response.content.decode()
    assert not Checkpoint.objects.exists()


def test_a_checkpoint_inside_the_roots_is_stored_under_its_resolved_path(api, root, tiny_model_dir):
    shutil.copytree(tiny_model_dir, root / "base")
    (root / "link").symlink_to(root / "base")  # a symlink that stays inside is fine
    created = api.post("/api/checkpoints/", {"name": "base", "path": str(root / "link"), "kind": "base"}, format="json")
    assert created.status_code == 201 and created.json()["path"] == str(root / "base")


def test_registering_does_not_echo_the_config_yaml(api, root, tiny_model_dir):
    shutil.copytree(tiny_model_dir, root / "run")
    (root / "run" / "config.yaml").write_text(yaml.safe_dump({"learning_rate": 2e-5, "hub_token": "hf_secret_inside"}))
    response = api.post("/api/checkpoints/register/", {"path": str(root / "run"), "kind": "sft"}, format="json")
    assert response.status_code == 201
    assert set(response.json()) == {"id", "name", "path", "kind", "parent", "run", "created_at"}
    assert "hf_secret_inside" not in response.content.decode()


@pytest.mark.parametrize(
    "config_json, config_yaml, message",
    [
        (b"{not json", None, "config.json is not a Hugging Face model config"),
        (b"\xff\xfe", None, "config.json is not a Hugging Face model config"),
        (b"[1, 2]", None, "config.json is not a Hugging Face model config"),
        (b'{"architectures": ["LlamaForCausalLM"]}', "a: &x [1]\nb: *x\n", "config.yaml is not a training config"),
        (b'{"architectures": ["LlamaForCausalLM"]}', "model: !!python/name:os.system\n", "config.yaml is not a training config"),
    ],
)
def test_a_checkpoint_folder_with_odd_config_files_is_a_400_not_a_500(api, root, config_json, config_yaml, message):
    (root / "odd").mkdir()
    (root / "odd" / "config.json").write_bytes(config_json)
    if config_yaml is not None:
        (root / "odd" / "config.yaml").write_text(config_yaml)
    response = api.post("/api/checkpoints/register/", {"path": str(root / "odd"), "kind": "sft"}, format="json")
    assert response.status_code == 400 and message in response.json()["message"]


def test_hub_ids_are_accepted_only_where_the_operator_allows_them(api, root, settings):
    refused = api.post("/api/checkpoints/", {"name": "hub", "path": "meta-llama/Llama-2-7b-chat-hf", "kind": "base"}, format="json")
    assert refused.status_code == 400 and REFUSED in refused.json()["message"]
    settings.CHECKPOINT_HUB_IDS = True
    created = api.post("/api/checkpoints/", {"name": "hub", "path": "meta-llama/Llama-2-7b-chat-hf", "kind": "base"}, format="json")
    assert created.status_code == 201 and created.json()["path"] == "meta-llama/Llama-2-7b-chat-hf"
    dotted = api.post("/api/checkpoints/", {"name": "hub2", "path": "../Llama-2-7b", "kind": "base"}, format="json")
    assert dotted.status_code == 400 and REFUSED in dotted.json()["message"]


def test_the_admin_form_refuses_paths_outside_the_roots(client, root, outside, tiny_model_dir):
    admin = user_create(username="admin", role="admin", password="pw-123456")
    client.force_login(admin)
    response = client.post("/admin/generation/checkpoint/add/", {"name": "x", "path": str(outside), "kind": "base"})
    assert response.status_code == 200 and REFUSED in response.content.decode()
    shutil.copytree(tiny_model_dir, root / "base")
    added = client.post("/admin/generation/checkpoint/add/", {"name": "x", "path": str(root / "base"), "kind": "base"})
    assert added.status_code == 302 and Checkpoint.objects.get().path == str(root / "base")


def test_a_launch_refuses_a_registered_checkpoint_whose_folder_left_the_roots(root, outside, settings, tmp_path):
    from annotation_site.errors import ApplicationError
    from annotation_site.runs import services

    researcher = user_create(username="r", role="researcher", password="pw-123456")
    planted = Checkpoint.objects.create(name="planted", path=str(outside), kind="base")  # written past the site
    with pytest.raises(ApplicationError, match=REFUSED) as refused:
        services.run_launch(recipe="sft", launched_by=researcher, base_checkpoint=planted)
    assert refused.value.extra["field"] == "base_checkpoint"
