"""Users of every role, and clients logged in as them, for the security tests."""
from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from annotation_site.accounts.models import Role
from annotation_site.accounts.services import user_create

ROLES = ("anonymous", Role.ANNOTATOR.value, Role.RESEARCHER.value, Role.ADMIN.value)
PASSWORD = "pw-123456"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_user(role: str, username: str | None = None):
    return user_create(username=username or f"{role}-user", role=role, password=PASSWORD)


def api_client_as(user) -> APIClient:
    """An API client for `user` (None: anonymous) that answers 500s instead of raising them."""
    client = APIClient(raise_request_exception=False)
    if user is not None:
        client.force_authenticate(user)
    return client


def page_client_as(user) -> Client:
    client = Client(raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    return client


def assert_error_shape(response, status: int) -> dict:
    """The API's promised error body: {"error": code, "message": text}."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), body
    return body
