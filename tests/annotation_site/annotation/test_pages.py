"""The annotate page and the guideline admin, through Django's test client."""
import json

import pytest
from django.contrib.staticfiles import finders
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


def test_a_comparisons_admin_page_shows_what_was_compared_as_the_annotator_saw_it_with_no_save_button():
    item = make_ready_item(guideline_kind="safety")
    annotator = make_annotator()
    assignment = services.assignment_claim_next(annotator=annotator)
    comparison = services.comparison_submit(
        assignment=assignment, annotator=annotator, chosen="B", rating="slightly_better",
        response_a_is_safe=False, response_b_is_safe=True, active_ms=4200,
    )  # fmt: skip
    services.comparison_amend(
        comparison_id=comparison.pk, annotator=annotator, chosen="B", rating="better",
        response_a_is_safe=False, response_b_is_safe=True,
    )  # fmt: skip
    admin = logged_in(user_create(username="boss", role="admin", password="pw-123456"))
    html = admin.get(f"/admin/annotation/comparison/{comparison.pk}/change/").content.decode()
    assert item.dialogue.turns[0]["content"] in html
    shown_a, shown_b = (item.sample_b, item.sample_a) if assignment.flipped else (item.sample_a, item.sample_b)
    # Response A first, as shown; B was chosen and labelled safe, A unsafe.
    assert html.index(f"<p>{shown_a.text}</p>") < html.index(f"<p>{shown_b.text}</p>")
    assert "Response B (chosen)" in html and "Response A (chosen)" not in html
    assert "labelled <strong>unsafe</strong>" in html and "labelled <strong>safe</strong>" in html
    assert "Response B is better" in " ".join(html.split())
    assert "Chosen safe, other unsafe" in html and "ms on the item" in html and "by ann" in html
    assert "Changed by its annotator" in html and "slightly better (sample" in html
    assert 'name="_save"' not in html and 'name="_continue"' not in html


def test_the_admin_is_branded_and_the_favicon_exists():
    admin = logged_in(user_create(username="boss", role="admin", password="pw-123456"))
    html = admin.get("/admin/").content.decode()
    assert "RLHF loop administration" in html and "<title>" in html and "RLHF loop admin</title>" in html
    assert 'rel="icon"' in html
    icon = admin.get("/favicon.ico")
    assert icon.status_code == 301 and icon["Location"].endswith("annotation/favicon.svg")
    assert finders.find("annotation/favicon.svg") is not None
