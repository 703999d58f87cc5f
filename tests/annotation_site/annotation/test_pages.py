"""The annotate page and the guideline admin, through Django's test client."""
import json

import pytest
from django.test import Client

from annotation_site.accounts.services import user_create
from annotation_site.annotation import services
from annotation_site.annotation.models import Guideline
from tests.annotation_site.annotation.factories import make_annotator, make_ready_item

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def initial_state(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="initial-state" type="application/json">') + len('<script id="initial-state" type="application/json">')
    return json.loads(html[start : html.index("</script>", start)])


def test_the_annotate_page_embeds_the_claimed_item_the_guideline_and_the_weekly_quota():
    services.guideline_publish(kind="helpfulness", title="Be helpful", text="Choose the reply that helps most.")
    item = make_ready_item()
    response = logged_in(make_annotator(weekly_quota=25)).get("/annotate/")
    assert response.status_code == 200
    state = initial_state(response)
    assert state["assignment"]["dialogue"] == item.dialogue.turns
    html = response.content.decode()
    assert "Choose the reply that helps most." in html and "(v1)" in html
    assert 'id="quota-total">25<' in html
    assert "model-a" not in html  # the model behind a response is never shown


def test_the_annotate_page_is_never_served_from_the_browser_cache():
    make_ready_item()
    response = logged_in(make_annotator()).get("/annotate/")
    assert "no-store" in response["Cache-Control"]


def test_reloading_the_page_shows_the_same_item():
    make_ready_item()
    make_ready_item()
    client = logged_in(make_annotator())
    first = initial_state(client.get("/annotate/"))["assignment"]["id"]
    assert initial_state(client.get("/annotate/"))["assignment"]["id"] == first


def test_with_nothing_ready_the_page_waits_with_the_queue_status():
    state = initial_state(logged_in(make_annotator()).get("/annotate/"))
    assert state["assignment"] is None and state["queue"]["ready_for_you"] == 0


def test_editing_a_guideline_in_the_admin_publishes_a_new_version_and_keeps_the_old():
    old = services.guideline_publish(kind="safety", title="Safety", text="Old text.")
    admin = logged_in(user_create(username="boss", role="admin", password="pw-123456"))
    response = admin.post(
        f"/admin/annotation/guideline/{old.pk}/change/",
        {"kind": "safety", "title": "Safety", "text": "New text.", "overlap": 3, "is_active": "on"},
    )
    assert response.status_code == 302
    old.refresh_from_db()
    assert old.text == "Old text."
    new = Guideline.objects.get(kind="safety", version=2)
    assert (new.text, new.overlap) == ("New text.", 3)


def test_comparisons_are_read_only_in_the_admin():
    admin = logged_in(user_create(username="boss", role="admin", password="pw-123456"))
    assert admin.get("/admin/annotation/comparison/add/").status_code == 403
