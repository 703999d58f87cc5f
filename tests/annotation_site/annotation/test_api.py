"""The annotation API: the same operations as the page, with session or token auth."""
import json

import pytest
from rest_framework.test import APIClient

from annotation_site.accounts.services import user_create
from annotation_site.annotation import services
from annotation_site.annotation.models import Assignment, Comparison, Demonstration, Item, ItemStatus
from tests.annotation_site.annotation.factories import make_annotator, make_demonstration_item, make_ready_item

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def claim(client, **data):
    response = client.post("/api/annotate/next/", data, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_next_item_shows_dialogue_and_two_unnamed_responses():
    item = make_ready_item()
    body = claim(client_for(make_annotator()))
    shown = body["assignment"]
    assert shown["task_kind"] == "comparison" and shown["guideline_kind"] == "helpfulness"
    assert shown["dialogue"] == item.dialogue.turns
    assert [r["label"] for r in shown["responses"]] == ["A", "B"]
    assert {r["text"] for r in shown["responses"]} == {item.sample_a.text, item.sample_b.text}
    assert "model-a" not in json.dumps(body) and "model-b" not in json.dumps(body)  # who wrote it is never shown
    assert body["queue"] is None  # only a waiting page needs the counts


def test_next_item_is_null_with_the_queue_status_when_nothing_is_ready():
    annotator = make_annotator()
    services.prompt_write(annotator=annotator, text="Explain tides", guideline_kind="helpfulness")
    body = claim(client_for(annotator))
    assert body["assignment"] is None
    assert body["queue"] == {"ready_for_you": 0, "ready": 0, "needs_samples": 1, "cap": 1000}


def test_submit_skip_and_progress_round_trip():
    make_ready_item()
    make_ready_item()
    annotator = make_annotator(weekly_quota=10)
    client = client_for(annotator)
    first = claim(client)["assignment"]
    response = client.post(
        f"/api/assignments/{first['id']}/comparison/", {"chosen": "B", "rating": "better", "active_ms": 1500}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["chosen"] == "B" and response.json()["rating"] == "better"
    repeat = client.post(f"/api/assignments/{first['id']}/comparison/", {"chosen": "B", "rating": "better"}, format="json")
    assert repeat.status_code == 201 and repeat.json()["id"] == response.json()["id"] and repeat.json()["chosen"] == "B"
    second = claim(client)["assignment"]
    assert client.post(f"/api/assignments/{second['id']}/skip/", {}, format="json").status_code == 400
    skipped = client.post(f"/api/assignments/{second['id']}/skip/", {"reason": "not my language"}, format="json")
    assert skipped.status_code == 200 and skipped.json()["status"] == "skipped"
    progress = client.get("/api/me/progress/").json()
    assert (progress["done"], progress["quota"], progress["fraction"]) == (1, 10, 0.1)
    assert Comparison.objects.count() == 1


def test_a_different_repeat_submit_is_a_409_with_the_stored_answer_and_amending_changes_it():
    make_ready_item()
    make_ready_item()
    annotator = make_annotator()
    client = client_for(annotator)
    first = claim(client)["assignment"]
    stored = submit(client, first["id"], chosen="B", rating="better").json()
    repeat = submit(client, first["id"], chosen="A", rating="better", next={})
    assert repeat.status_code == 409, repeat.content
    body = repeat.json()
    assert body["error"] == "conflict" and "first answer was kept" in body["message"]
    assert body["stored"] == {
        "comparison": stored["id"], "chosen": "B", "rating": "better", "response_a_is_safe": None, "response_b_is_safe": None
    }
    assert Assignment.objects.filter(annotator=annotator, status="claimed").count() == 0  # a refused submit claims nothing
    amended = client.post(f"/api/comparisons/{stored['id']}/amend/", {"chosen": "A", "rating": "better"}, format="json")
    assert amended.status_code == 200, amended.content
    assert amended.json()["chosen"] == "A" and Comparison.objects.get().amendments.count() == 1
    someone_else = client_for(make_annotator("other"))
    refused = someone_else.post(f"/api/comparisons/{stored['id']}/amend/", {"chosen": "B", "rating": "better"}, format="json")
    assert refused.status_code == 404


def test_the_safety_refusal_comes_back_as_a_400_with_the_reason():
    make_ready_item(guideline_kind="safety")
    client = client_for(make_annotator())
    shown = claim(client)["assignment"]
    response = client.post(
        f"/api/assignments/{shown['id']}/comparison/",
        {"chosen": "A", "rating": "better", "response_a_is_safe": False, "response_b_is_safe": True},
        format="json",
    )
    assert response.status_code == 400
    assert "unsafe while the other is safe" in response.json()["message"]
    assert not Comparison.objects.exists()


def test_bad_input_names_the_field():
    make_ready_item()
    client = client_for(make_annotator())
    shown = claim(client)["assignment"]
    response = client.post(f"/api/assignments/{shown['id']}/comparison/", {"chosen": "A", "rating": "huge"}, format="json")
    assert response.status_code == 400 and "rating" in response.json()["fields"]


def test_writing_a_prompt_and_continuing_a_dialogue_queue_items_needing_samples():
    make_ready_item()
    client = client_for(make_annotator())
    written = client.post("/api/prompts/", {"text": "Explain tides", "guideline_kind": "helpfulness"}, format="json")
    assert written.status_code == 201 and written.json()["status"] == "needs_samples"
    shown = claim(client)["assignment"]
    comparison = client.post(f"/api/assignments/{shown['id']}/comparison/", {"chosen": "A", "rating": "better"}, format="json")
    continued = client.post(f"/api/comparisons/{comparison.json()['id']}/continue/", {"message": "Why?"}, format="json")
    assert continued.status_code == 201
    assert [turn["role"] for turn in continued.json()["dialogue"]] == ["user", "assistant", "user"]
    assert Item.objects.filter(status=ItemStatus.NEEDS_SAMPLES).count() == 2
    status = client.get("/api/queue/status/").json()
    assert status["needs_samples"] == 2


def test_a_demonstration_is_submitted_through_its_own_operation():
    make_demonstration_item()
    client = client_for(make_annotator())
    shown = claim(client, task_kind="demonstration")["assignment"]
    assert shown["task_kind"] == "demonstration" and shown["responses"] == []
    response = client.post(f"/api/assignments/{shown['id']}/demonstration/", {"text": "Here is how.", "active_ms": 10}, format="json")
    assert response.status_code == 201 and Demonstration.objects.get().text == "Here is how."


def test_admins_and_researchers_queue_demonstration_prompts_but_annotators_cannot():
    payload = {
        "task_kind": "demonstration",
        "prompts": [{"turns": [{"role": "user", "content": "Write a haiku about rain"}], "guideline_kind": "helpfulness"}],
    }
    researcher = user_create(username="res", role="researcher", password="pw-123456")
    assert client_for(make_annotator()).post("/api/prompts/queue/", payload, format="json").status_code == 403
    response = client_for(researcher).post("/api/prompts/queue/", payload, format="json")
    assert response.status_code == 201
    assert Item.objects.get(pk=response.json()["item_ids"][0]).status == ItemStatus.READY


def test_a_token_obtained_with_the_password_authenticates_api_calls():
    make_ready_item()
    make_annotator("tok")
    client = APIClient()
    token = client.post("/api/auth/token/", {"username": "tok", "password": "pw-123456"}, format="json").json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert claim(client)["assignment"] is not None


def test_the_schema_and_docs_are_served_to_a_signed_in_annotator():
    client = APIClient()
    client.force_login(make_annotator())
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/annotate/next/" in schema.content
    assert client.get("/api/docs/").status_code == 200


def test_the_schema_answers_a_token_client_too():
    schema = client_for(make_annotator()).get("/api/schema/")
    assert schema.status_code == 200 and b"/api/annotate/next/" in schema.content


def test_anonymous_visitors_get_neither_the_schema_nor_the_docs():
    client = APIClient()
    schema = client.get("/api/schema/")
    assert schema.status_code in (401, 403) and b"/api/annotate/next/" not in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 302 and docs["Location"].startswith("/accounts/login/?next=/api/docs/")


def test_the_api_docs_say_what_a_client_needs_and_no_internal_notes():
    text = client_for(make_annotator()).get("/api/schema/").content.decode()
    assert "Authorization: Token" in text and "WWW-Authenticate" in text and "/amend/" in text
    assert "CPU" not in text and "hot path" not in text


def submit(client, assignment_id: int, **data):
    return client.post(f"/api/assignments/{assignment_id}/comparison/", {"chosen": "A", "rating": "better", **data}, format="json")


def test_a_submit_with_next_returns_the_next_item_claimed_in_the_same_request():
    make_ready_item(priority=2)
    second_item = make_ready_item(priority=1)
    annotator = make_annotator()
    client = client_for(annotator)
    first = claim(client)["assignment"]
    response = submit(client, first["id"], next={})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["rating"] == "better" and body["assignment"] == first["id"]
    following = body["next"]["assignment"]
    claimed = Assignment.objects.get(annotator=annotator, item=second_item)
    assert following["id"] == claimed.pk and claimed.status == "claimed"
    # The next item comes back exactly as the assignment endpoint shows it.
    assert following == client.get(f"/api/assignments/{claimed.pk}/").json()
    assert body["next"]["queue"] is None


def test_a_plain_submit_claims_nothing_more():
    make_ready_item()
    make_ready_item()
    annotator = make_annotator()
    client = client_for(annotator)
    first = claim(client)["assignment"]
    response = submit(client, first["id"])
    assert response.status_code == 201 and "next" not in response.json()
    assert Assignment.objects.filter(annotator=annotator).count() == 1


def test_a_repeated_submit_with_next_stores_one_comparison_and_claims_one_next_item():
    make_ready_item()
    make_ready_item()
    make_ready_item()
    annotator = make_annotator()
    client = client_for(annotator)
    first = claim(client)["assignment"]
    once, again = submit(client, first["id"], next={}).json(), submit(client, first["id"], next={}).json()
    assert once["id"] == again["id"] and Comparison.objects.count() == 1
    assert once["next"]["assignment"]["id"] == again["next"]["assignment"]["id"]  # the live claim, not a second one
    assert Assignment.objects.filter(annotator=annotator, status="claimed").count() == 1


def test_the_next_item_after_the_last_is_null_with_the_queue_status():
    make_ready_item()
    client = client_for(make_annotator())
    only = claim(client)["assignment"]
    body = submit(client, only["id"], next={}).json()
    assert body["next"] == {"assignment": None, "queue": {"ready_for_you": 0, "ready": 0, "needs_samples": 0, "cap": 1000}}


def test_a_skip_with_next_takes_the_filters_of_the_next_item_endpoint():
    make_ready_item(priority=5)
    make_ready_item(priority=4)
    safety = make_ready_item(guideline_kind="safety")
    annotator = make_annotator()
    client = client_for(annotator)
    first = claim(client)["assignment"]
    response = client.post(
        f"/api/assignments/{first['id']}/skip/", {"reason": "unclear prompt", "next": {"guideline_kind": "safety"}}, format="json"
    )
    assert response.status_code == 200 and response.json()["status"] == "skipped"
    assert response.json()["next"]["assignment"]["id"] == Assignment.objects.get(annotator=annotator, item=safety).pk


def test_a_demonstration_with_next_returns_the_next_item():
    make_demonstration_item()
    make_ready_item()
    client = client_for(make_annotator())
    first = claim(client, task_kind="demonstration")["assignment"]
    response = client.post(f"/api/assignments/{first['id']}/demonstration/", {"text": "Boil it.", "next": {}}, format="json")
    assert response.status_code == 201 and response.json()["next"]["assignment"]["task_kind"] == "comparison"


def test_a_bad_next_filter_is_refused_before_anything_is_stored():
    make_ready_item()
    client = client_for(make_annotator())
    first = claim(client)["assignment"]
    response = submit(client, first["id"], next={"guideline_kind": "kindness"})
    assert response.status_code == 400 and "next" in json.dumps(response.json())
    assert Comparison.objects.count() == 0


def test_next_cannot_submit_for_another_annotator():
    make_ready_item()
    make_ready_item()
    theirs = claim(client_for(make_annotator("owner")))["assignment"]
    intruder = make_annotator("intruder")
    response = submit(client_for(intruder), theirs["id"], next={})
    assert response.status_code == 404
    assert not Assignment.objects.filter(annotator=intruder).exists()  # refused before any claim


@pytest.mark.django_db(transaction=True)  # in autocommit, as in production: no savepoints around the claim
def test_a_rated_item_over_the_api_is_three_statements_on_postgresql(postgres, django_assert_num_queries, monkeypatch):
    """Token authentication, the submit and the next claim: no middleware (sessions, the audit log,
    login throttling, the NUL guard) queries the database for an API-token request."""
    from rest_framework.authtoken.models import Token

    monkeypatch.setitem(services._last_sweep, "at", 1e18)  # no periodic expiry sweep inside this cycle
    make_ready_item()
    make_ready_item()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=make_annotator()).key}")
    first = claim(client)["assignment"]
    with django_assert_num_queries(3):
        response = client.post(
            f"/api/assignments/{first['id']}/comparison/", {"chosen": "A", "rating": "better", "next": {}}, format="json"
        )
    assert response.status_code == 201 and response.json()["next"]["assignment"]["id"] != first["id"]
