"""The demo's notice (DEMO_NOTICE) is shown to a user once they log in, on the page they land on."""
import pytest
from django.test import Client

from annotation_site.accounts.services import user_create

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role, lands_on", [("annotator", "/annotate/"), ("researcher", "/runs/")])
def test_the_demo_notice_is_shown_after_login(settings, role, lands_on):
    settings.DEMO_NOTICE = "The demo model is tiny."
    user_create(username="u", role=role, password="pw-123456")
    client = Client()
    landed = client.post("/accounts/login/", {"username": "u", "password": "pw-123456", "next": lands_on}, follow=True)
    assert landed.redirect_chain[-1][0] == lands_on
    assert "The demo model is tiny." in landed.content.decode()
    assert "The demo model is tiny." not in client.get(lands_on).content.decode()  # once, not on every page


def test_without_a_demo_notice_nothing_is_shown(settings):
    settings.DEMO_NOTICE = ""
    user_create(username="u", role="annotator", password="pw-123456")
    landed = Client().post("/accounts/login/", {"username": "u", "password": "pw-123456", "next": "/annotate/"}, follow=True)
    assert 'class="notice message"' not in landed.content.decode()
