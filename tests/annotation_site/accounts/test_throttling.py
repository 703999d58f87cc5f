"""Failed logins are throttled per username and address (django-axes) on the login page, the admin's
login page and the API token endpoint; the refusal says when to try again, and an admin can unlock."""
import datetime as dt

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from rest_framework.test import APIClient

from annotation_site.accounts.services import user_create

pytestmark = pytest.mark.django_db

PASSWORD = "right-password"


@pytest.fixture
def annotator():
    return user_create(username="ann", role="annotator", password=PASSWORD)


def login_page(client, password, *, username="ann", path="/accounts/login/", address="127.0.0.1"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def token(password, *, username="ann", address="127.0.0.1"):
    return APIClient().post(
        "/api/auth/token/", {"username": username, "password": password}, format="json", REMOTE_ADDR=address
    )


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def fail_until_locked(attempt) -> list:
    return [attempt("wrong") for _ in range(settings.AXES_FAILURE_LIMIT)]


def test_the_login_page_refuses_the_right_password_after_too_many_failures_and_says_when(client, annotator):
    responses = fail_until_locked(lambda password: login_page(client, password))
    assert [r.status_code for r in responses[:-1]] == [200] * (settings.AXES_FAILURE_LIMIT - 1)
    assert responses[-1].status_code == 429
    refused = login_page(client, PASSWORD)
    assert refused.status_code == 429 and not signed_in(client)
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    assert f"Try again in {minutes} minutes" in refused.content.decode()
    assert 0 < int(refused["Retry-After"]) <= settings.AXES_COOLOFF_TIME.total_seconds()


def test_the_right_password_works_again_once_the_cool_off_has_passed(client, annotator):
    fail_until_locked(lambda password: login_page(client, password))
    assert login_page(client, PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=dt.datetime.now(dt.UTC) - settings.AXES_COOLOFF_TIME - dt.timedelta(seconds=1))
    assert login_page(client, PASSWORD).status_code == 302 and signed_in(client)


def test_the_lockout_holds_one_username_from_one_address_only(client, annotator):
    user_create(username="other", role="annotator", password=PASSWORD)
    fail_until_locked(lambda password: login_page(client, password))
    assert login_page(client, PASSWORD, address="10.0.0.2").status_code == 302
    assert login_page(client, PASSWORD, username="other").status_code == 302


def test_a_successful_login_forgets_the_earlier_failures(client, annotator):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login_page(client, "wrong")
    assert login_page(client, PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login_page(client, "wrong").status_code == 200
    assert login_page(client, PASSWORD).status_code == 302


def test_the_admin_login_page_is_throttled_too(client):
    user_create(username="boss", role="admin", password=PASSWORD)
    fail_until_locked(lambda password: login_page(client, password, username="boss", path="/admin/login/"))
    refused = login_page(client, PASSWORD, username="boss", path="/admin/login/")
    assert refused.status_code == 429 and "Try again in" in refused.content.decode() and not signed_in(client)


def test_the_token_endpoint_answers_429_with_retry_after_and_a_json_message(annotator):
    responses = fail_until_locked(token)
    assert [r.status_code for r in responses[:-1]] == [400] * (settings.AXES_FAILURE_LIMIT - 1)
    refused = token(PASSWORD)
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"] == "locked_out" and "Try again in" in body["message"]
    assert int(refused["Retry-After"]) == body["retry_after"] <= settings.AXES_COOLOFF_TIME.total_seconds()
    assert "token" not in body


def test_failures_on_the_token_endpoint_and_the_login_page_add_up(client, annotator):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        token("wrong")
    assert login_page(client, "wrong").status_code == 429
    assert token(PASSWORD).status_code == 429


def test_the_right_password_gets_a_token_while_under_the_limit(annotator):
    token("wrong")
    assert token(PASSWORD).status_code == 200 and token(PASSWORD).json()["token"]


def test_an_admin_sees_the_locked_account_and_deleting_its_attempt_unlocks_it(client, annotator):
    fail_until_locked(token)
    admin = APIClient()
    admin.force_login(user_create(username="boss", role="admin", password=PASSWORD))
    listing = admin.get("/admin/axes/accessattempt/?locked_out=yes")
    assert listing.status_code == 200 and "ann" in listing.content.decode()
    attempt = AccessAttempt.objects.get(username="ann")
    deleted = admin.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302 and not AccessAttempt.objects.exists()
    assert token(PASSWORD).status_code == 200


def test_researchers_and_annotators_cannot_open_the_lockouts(client):
    for role in ("researcher", "annotator"):
        client.force_login(user_create(username=role, role=role, password=PASSWORD))
        assert client.get("/admin/axes/accessattempt/").status_code in (302, 403)


def test_without_a_proxy_a_forged_forwarded_for_header_does_not_escape_the_lockout(client, annotator):
    for n in range(settings.AXES_FAILURE_LIMIT):
        client.post("/accounts/login/", {"username": "ann", "password": "wrong"}, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")
    refused = client.post("/accounts/login/", {"username": "ann", "password": PASSWORD}, HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert refused.status_code == 429


def test_behind_one_proxy_the_address_it_appended_counts_not_what_the_client_wrote(client, annotator, settings):
    settings.TRUSTED_PROXY_COUNT = 1

    def through_proxy(password, *, client_ip="203.0.113.7", forged="198.51.100.1"):
        # The client sends X-Forwarded-For: forged; the proxy appends the address it saw.
        return client.post(
            "/accounts/login/", {"username": "ann", "password": password},
            REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=f"{forged}, {client_ip}",
        )  # fmt: skip

    for n in range(settings.AXES_FAILURE_LIMIT):
        through_proxy("wrong", forged=f"198.51.100.{n}")
    assert through_proxy(PASSWORD, forged="198.51.100.99").status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.7"}
    assert through_proxy(PASSWORD, client_ip="203.0.113.8").status_code == 302
