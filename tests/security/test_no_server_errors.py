"""Requests that once ended in a 500 (issue 11's probe): each is now a 4xx, or a 503 for an outage,
with the API's JSON error shape under /api/."""
from __future__ import annotations

import json

import psycopg2
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from annotation_site.annotation import services
from annotation_site.annotation.models import Comparison, Item
from tests.annotation_site.annotation.factories import make_ready_item
from tests.conftest import database_is_postgres, require
from tests.security.conftest import api_client_as, assert_error_shape, make_user, page_client_as
from tests.support import site_processes
from tests.support.site_processes import run_site

PAST_BIGINT = 2**63
SUBMIT = {"chosen": "A", "rating": "better"}


def one_prompt(turns) -> dict:
    return {"prompts": [{"turns": turns, "guideline_kind": "helpfulness"}], "task_kind": "comparison"}


def alternating(count: int, text: str = "hello") -> list[dict]:
    return [{"role": "user" if index % 2 == 0 else "assistant", "content": text} for index in range(count)]


# --- ids past bigint ---------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("assignment_id", [PAST_BIGINT, 10**25, 2**63 - 1])
def test_a_submit_to_an_id_past_the_largest_database_id_is_a_json_404(assignment_id):
    response = api_client_as(make_user("annotator")).post(f"/api/assignments/{assignment_id}/comparison/", SUBMIT, format="json")
    assert_error_shape(response, 404)


@pytest.mark.django_db
def test_a_page_with_an_id_past_bigint_is_a_404_page():
    response = page_client_as(make_user("researcher")).get(f"/runs/{PAST_BIGINT}/")
    assert response.status_code == 404 and not response["Content-Type"].startswith("application/json")


# --- JSON bodies --------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [50_000, 1_025, 33])
def test_json_nested_too_deep_is_a_400_even_for_anonymous_users(depth):
    body = "[" * depth + "]" * depth
    response = api_client_as(None).post("/api/auth/token/", body, content_type="application/json")
    assert "JSON" in assert_error_shape(response, 400)["message"]


@pytest.mark.django_db
def test_json_nested_to_the_cap_is_parsed_and_judged_by_the_serializer(settings):
    body = "[" * settings.API_JSON_MAX_DEPTH + "]" * settings.API_JSON_MAX_DEPTH
    response = api_client_as(make_user("annotator")).post("/api/prompts/", body, content_type="application/json")
    assert assert_error_shape(response, 400)["error"] == "invalid"  # the serializer's answer, not the parser's


@pytest.mark.django_db
def test_a_lone_surrogate_postgresql_cannot_store_is_a_400():
    body = '{"text": "\\ud800", "guideline_kind": "helpfulness"}'
    response = api_client_as(make_user("annotator")).post("/api/prompts/", body, content_type="application/json")
    assert_error_shape(response, 400)
    assert not Item.objects.exists()


# --- body size ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_json_body_over_the_upload_limit_is_a_json_413(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = json.dumps({"text": "x" * 20_000, "guideline_kind": "helpfulness"})
    response = api_client_as(make_user("annotator")).post("/api/prompts/", body, content_type="application/json")
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in assert_error_shape(response, 413)["message"]
    assert not Item.objects.exists()


@pytest.mark.django_db
def test_a_form_body_over_the_upload_limit_is_a_json_413_under_the_api(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = api_client_as(None).post("/api/auth/token/", {"username": "x" * 20_000, "password": "p"})
    assert_error_shape(response, 413)


@pytest.mark.django_db
def test_a_form_body_over_the_upload_limit_is_a_plain_413_page_elsewhere(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = page_client_as(None).post("/accounts/login/", {"username": "x" * 20_000, "password": "p"})
    assert response.status_code == 413 and response["Content-Type"].startswith("text/html")


# --- NUL characters -------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/admin/annotation/comparison/?rating__exact=%00",
        "/admin/annotation/comparison/?q=a%00b",
        "/admin/authtoken/tokenproxy/%00/change/",
    ],
)
def test_a_nul_character_in_an_admin_url_is_a_400(path):
    response = page_client_as(make_user("admin")).get(path)
    assert response.status_code == 400


@pytest.mark.django_db
def test_a_nul_character_in_form_data_is_a_400():
    assert page_client_as(None).post("/accounts/login/", {"username": "a\x00b", "password": "x"}).status_code == 400


@pytest.mark.django_db
def test_a_nul_character_in_an_api_query_is_a_json_400():
    response = api_client_as(make_user("annotator")).get("/api/queue/status/?guideline_kind=%00")
    assert "NUL" in assert_error_shape(response, 400)["message"]


# --- checkpoint registration ----------------------------------------------------------------------------


@pytest.fixture
def checkpoint_root(settings, tmp_path):
    settings.CHECKPOINT_ROOT = tmp_path
    return tmp_path


@pytest.mark.django_db
@pytest.mark.parametrize("make_path", [
    lambda root: str(root / ("x" * 300) / "model"),
    lambda root: "~nosuchuser/x",
    lambda root: str(root / "a\x00b"),
])
def test_registering_an_unusable_path_is_a_400(checkpoint_root, make_path):
    response = api_client_as(make_user("researcher")).post(
        "/api/checkpoints/register/", {"path": make_path(checkpoint_root), "kind": "sft"}, format="json"
    )
    assert_error_shape(response, 400)


@pytest.mark.django_db
@pytest.mark.parametrize("config_json", ["not json {", "[1, 2]", '{"architectures": 7}', b"\xff\xfe"])
def test_registering_a_folder_whose_config_json_is_not_a_model_config_is_a_400(checkpoint_root, config_json):
    folder = checkpoint_root / "run-1"
    folder.mkdir()
    (folder / "config.json").write_bytes(config_json if isinstance(config_json, bytes) else config_json.encode())
    response = api_client_as(make_user("researcher")).post(
        "/api/checkpoints/register/", {"path": str(folder), "kind": "sft"}, format="json"
    )
    assert response.status_code in (201, 400), response.content
    if response.status_code == 400:
        assert_error_shape(response, 400)


@pytest.mark.django_db
def test_a_value_postgresql_cannot_store_in_a_run_config_is_a_400_not_a_500(checkpoint_root):
    require(database_is_postgres(), "needs PostgreSQL: set DATABASE_URL")
    folder = checkpoint_root / "run-nul"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (folder / "config.yaml").write_text('notes: "a\\0b"\n')  # YAML's \0 escape: a NUL, which jsonb refuses
    response = api_client_as(make_user("researcher")).post(
        "/api/checkpoints/register/", {"path": str(folder), "kind": "sft"}, format="json"
    )
    assert "PostgreSQL cannot store it" in assert_error_shape(response, 400)["message"]


# --- a repeated submit after the comparison was deleted ----------------------------------------------


@pytest.mark.django_db
def test_a_repeat_submit_after_an_admin_deleted_the_comparison_is_a_409():
    make_ready_item()
    annotator = make_user("annotator")
    assignment = services.assignment_claim_next(annotator=annotator)
    client = api_client_as(annotator)
    assert client.post(f"/api/assignments/{assignment.pk}/comparison/", SUBMIT, format="json").status_code == 201
    Comparison.objects.all().delete()
    again = client.post(f"/api/assignments/{assignment.pk}/comparison/", SUBMIT, format="json")
    assert "removed" in assert_error_shape(again, 409)["message"]
    assert not Comparison.objects.exists()


# --- dialogue caps ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_dialogue_with_more_turns_than_the_cap_is_refused_naming_the_setting(settings):
    response = api_client_as(make_user("researcher")).post("/api/prompts/queue/", one_prompt(alternating(10_001)), format="json")
    assert "DIALOGUE_MAX_TURNS" in assert_error_shape(response, 400)["message"]
    assert not Item.objects.exists()


@pytest.mark.django_db
def test_a_dialogue_at_the_turn_cap_is_queued(settings):
    settings.DIALOGUE_MAX_TURNS = 5
    response = api_client_as(make_user("researcher")).post("/api/prompts/queue/", one_prompt(alternating(5)), format="json")
    assert response.status_code == 201


@pytest.mark.django_db
def test_a_turn_or_a_dialogue_over_its_character_cap_is_refused(settings):
    settings.DIALOGUE_MAX_TURN_CHARS, settings.DIALOGUE_MAX_CHARS = 100, 250
    researcher = api_client_as(make_user("researcher"))
    one_long_turn = researcher.post("/api/prompts/queue/", one_prompt(alternating(1, "x" * 101)), format="json")
    long_in_all = researcher.post("/api/prompts/queue/", one_prompt(alternating(3, "x" * 90)), format="json")
    assert "DIALOGUE_MAX_TURN_CHARS" in assert_error_shape(one_long_turn, 400)["message"]
    assert "DIALOGUE_MAX_CHARS" in assert_error_shape(long_in_all, 400)["message"]


@pytest.mark.django_db
def test_an_import_line_with_more_turns_than_the_cap_refuses_the_file_naming_the_line(settings, tmp_path):
    settings.DIALOGUE_MAX_TURNS = 3
    path = tmp_path / "prompts.jsonl"
    lines = [{"prompt": "fine"}, {"messages": alternating(5)}, "[" * 50_000 + "]" * 50_000]
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines))
    with pytest.raises(CommandError) as refused:
        call_command("import_prompts", str(path))
    assert "line 2:" in str(refused.value) and "DIALOGUE_MAX_TURNS" in str(refused.value)
    assert "line 3: JSON nested too deeply" in str(refused.value)
    assert not Item.objects.exists()


# --- outages ----------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_database_connection_killed_under_a_request_is_a_json_503_with_retry_after():
    require(database_is_postgres(), "needs PostgreSQL: set DATABASE_URL")
    annotator = make_user("annotator")
    connection.ensure_connection()
    backend_pid = connection.connection.get_backend_pid()
    params = connection.get_connection_params()
    other = psycopg2.connect(**params)
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend_pid])
        response = api_client_as(annotator).get("/api/me/progress/")
    finally:
        other.close()
        connection.close()
    assert "database" in assert_error_shape(response, 503)["message"]
    assert int(response["Retry-After"]) >= 1


@pytest.mark.django_db(transaction=True)
def test_a_database_that_cannot_be_reached_is_a_503_page_for_the_browser():
    require(database_is_postgres(), "needs PostgreSQL: set DATABASE_URL")
    client = page_client_as(make_user("annotator"))
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = "1"  # nothing listens on port 1
    try:
        response = client.get("/annotate/")
    finally:
        connection.settings_dict["PORT"] = port
        connection.close()
    assert response.status_code == 503 and response["Content-Type"].startswith("text/html")
    assert "Retry-After" in response and b"database" in response.content


FILL_WITH_THE_BROKER_DOWN = """
import json
from django.test import Client
from annotation_site.accounts.services import user_create
client = Client(raise_request_exception=False)
client.force_login(user_create(username="filler", role="researcher", password="pw-123456"))
response = client.post("/api/generation/fill/")
print(json.dumps({"status": response.status_code, "retry_after": response.get("Retry-After"), "body": response.json()}))
"""


@pytest.mark.django_db(transaction=True)
def test_asking_for_a_fill_while_redis_is_down_is_a_503_with_retry_after():
    require(database_is_postgres(), "needs PostgreSQL: the site process shares the test database")
    env = site_processes.site_env(broker_url="redis://127.0.0.1:1/0")  # a closed port: the broker is down
    answer = json.loads(run_site(env, FILL_WITH_THE_BROKER_DOWN))
    assert answer["status"] == 503 and int(answer["retry_after"]) >= 1
    assert answer["body"]["error"] == "unavailable" and "task queue" in answer["body"]["message"]
