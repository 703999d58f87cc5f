"""Only researchers and admins reach the dashboard and the runs API; annotators get 403 and
anonymous visitors are sent to log in."""
import pytest
from rest_framework.test import APIClient

from tests.annotation_site.runs.conftest import make_user

pytestmark = pytest.mark.django_db

PAGES = [
    ("get", "/runs/"),
    ("get", "/runs/launch/"),
    ("post", "/runs/launch/"),
    ("get", "/runs/compare/"),
    ("get", "/runs/1/"),
    ("get", "/runs/1/curves.png"),
    ("get", "/runs/1/plots/loss_curve.png"),
    ("post", "/runs/1/cancel/"),
    ("post", "/runs/1/deploy/"),
]
API = [
    ("get", "/api/runs/"),
    ("post", "/api/runs/"),
    ("get", "/api/runs/configs/"),
    ("get", "/api/runs/compare/?run=1&run=2"),
    ("get", "/api/runs/1/"),
    ("get", "/api/runs/1/progress/"),
    ("get", "/api/runs/1/eval/"),
    ("post", "/api/runs/1/cancel/"),
    ("post", "/api/runs/1/deploy/"),
]


@pytest.mark.parametrize("method, url", PAGES)
def test_annotators_get_403_and_anonymous_users_go_to_login_on_every_page(client, method, url):
    anonymous = getattr(client, method)(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/?next=")
    client.force_login(make_user("annotator"))
    assert getattr(client, method)(url).status_code == 403


@pytest.mark.parametrize("method, url", API)
def test_annotators_and_anonymous_users_are_refused_by_the_api(method, url):
    anonymous = getattr(APIClient(), method)(url, {}, format="json")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == "Token"
    annotator = APIClient()
    annotator.force_authenticate(make_user("annotator"))
    refused = getattr(annotator, method)(url, {}, format="json")
    assert refused.status_code == 403 and "researchers" in refused.json()["message"]


@pytest.mark.parametrize("role", ["researcher", "admin"])
def test_researchers_and_admins_see_the_dashboard_and_the_api(client, role):
    user = make_user(role)
    client.force_login(user)
    assert client.get("/runs/").status_code == 200
    assert client.get("/runs/launch/").status_code == 200
    api = APIClient()
    api.force_authenticate(user)
    assert api.get("/api/runs/").status_code == 200
    assert api.get("/api/runs/1/").status_code == 404
