"""The one rule for text PostgreSQL cannot store (NUL, lone surrogates), on every way text comes in."""
import json

import pytest
import yaml
from django.test import Client
from rest_framework.test import APIClient

from annotation_site.accounts.services import user_create
from annotation_site.annotation import services
from annotation_site.annotation.models import Dialogue, Guideline
from annotation_site.errors import ApplicationError
from annotation_site.generation.models import Checkpoint
from annotation_site.text_rules import unstorable_reason

pytestmark = pytest.mark.django_db


def test_the_rule_names_the_place_of_the_character_inside_a_json_value():
    assert unstorable_reason("plain text\twith a tab and \x07 a bell") is None
    assert "turns[1].content: Null characters are not allowed" in unstorable_reason(
        [{"content": "ok"}, {"content": "a\x00b"}], where="turns"
    )
    assert "Surrogate characters are not allowed: U+D800" in unstorable_reason({"stop": ["\ud800"]})
    assert "(a key)" in unstorable_reason({"a\x00": 1})


def test_the_api_and_the_services_refuse_the_same_characters_with_the_same_words():
    client = APIClient()
    client.force_authenticate(user_create(username="writer", role="annotator", password="pw-123456"))
    answer = client.post("/api/prompts/", {"guideline_kind": "helpfulness", "text": "hi\x00"}, format="json")
    assert answer.status_code == 400 and "Null characters are not allowed" in json.dumps(answer.json())
    with pytest.raises(ApplicationError, match="The guideline text: Null characters are not allowed"):
        services.guideline_publish(kind="helpfulness", title="Be helpful", text="Rate\x00 the answers")
    with pytest.raises(ApplicationError, match="Turn 1: Surrogate characters are not allowed"):
        services.validate_turns([{"role": "user", "content": "\udfff"}])


def test_a_checkpoint_whose_config_file_holds_a_nul_is_refused_not_crashed(tiny_model_dir, tmp_path, settings):
    settings.CHECKPOINT_ROOTS = [str(tmp_path)]
    run = tmp_path / "rm-run"
    run.mkdir()
    for path in tiny_model_dir.iterdir():
        (run / path.name).write_bytes(path.read_bytes())
    (run / "config.yaml").write_text(yaml.safe_dump({"model": "x", "notes": "a\x00b"}))
    client = APIClient()
    client.force_authenticate(user_create(username="res", role="researcher", password="pw-123456"))
    answer = client.post("/api/checkpoints/register/", {"path": str(run), "kind": "sft"}, format="json")
    assert answer.status_code == 400, answer.content
    assert "training config.notes: Null characters are not allowed" in answer.json()["message"]
    assert not Checkpoint.objects.exists()


@pytest.fixture
def admin_client():
    client = Client()
    client.force_login(user_create(username="boss", role="admin", password="pw-123456"))
    return client


def test_the_admin_refuses_a_nul_in_a_guideline_text_before_it_reaches_the_form(admin_client):
    # The NUL middleware refuses form data holding a NUL for every page, the admin's included.
    answer = admin_client.post(
        "/admin/annotation/guideline/add/",
        {"kind": "helpfulness", "title": "Helpful", "text": "Rate\x00", "overlap": 1, "is_active": "on"},
    )
    assert answer.status_code == 400 and "NUL character" in answer.content.decode()
    assert not Guideline.objects.exists()


def test_the_admin_refuses_a_nul_inside_a_dialogues_json_turns_with_a_form_error(admin_client):
    dialogue = Dialogue.objects.create(turns=[{"role": "user", "content": "hi"}], guideline_kind="helpfulness")
    answer = admin_client.post(
        f"/admin/annotation/dialogue/{dialogue.pk}/change/",
        {"turns": '[{"role": "user", "content": "hi\\u0000"}]', "guideline_kind": "helpfulness", "source": "pool", "source_name": ""},
    )
    assert answer.status_code == 200 and "Null characters are not allowed" in answer.content.decode()
    dialogue.refresh_from_db()
    assert dialogue.turns == [{"role": "user", "content": "hi"}]
