"""Who may see what: own assignments only, login required, the admin for admins."""
import pytest
from django.test import Client
from rest_framework.test import APIClient

from annotation_site.accounts.services import user_create
from annotation_site.annotation import services
from annotation_site.annotation.models import Comparison
from tests.annotation_site.annotation.factories import make_annotator, make_ready_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def others_assignment():
    make_ready_item()
    owner = make_annotator("owner")
    return services.assignment_claim_next(annotator=owner)


def api_as(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_an_annotator_cannot_read_anothers_assignment(others_assignment):
    response = api_as(make_annotator("intruder")).get(f"/api/assignments/{others_assignment.pk}/")
    assert response.status_code == 404


def test_an_annotator_cannot_submit_or_skip_anothers_assignment(others_assignment):
    intruder = api_as(make_annotator("intruder"))
    submit = intruder.post(
        f"/api/assignments/{others_assignment.pk}/comparison/", {"chosen": "A", "rating": "better"}, format="json"
    )
    skip = intruder.post(f"/api/assignments/{others_assignment.pk}/skip/", {"reason": "x"}, format="json")
    assert (submit.status_code, skip.status_code) == (404, 404)
    others_assignment.refresh_from_db()
    assert others_assignment.status == "claimed" and not Comparison.objects.exists()


def test_an_annotator_can_read_their_own_assignment(others_assignment):
    response = api_as(others_assignment.annotator).get(f"/api/assignments/{others_assignment.pk}/")
    assert response.status_code == 200 and response.json()["id"] == others_assignment.pk


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/annotate/next/"),
        ("get", "/api/me/progress/"),
        ("get", "/api/queue/status/"),
        ("post", "/api/prompts/"),
        ("get", "/api/assignments/1/"),
    ],
)
def test_anonymous_api_calls_are_refused_with_a_token_challenge(method, path):
    refused = getattr(APIClient(), method)(path)
    assert refused.status_code == 401 and refused["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("path", ["/", "/annotate/"])
def test_anonymous_users_are_redirected_to_login(path):
    response = Client().get(path)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")


def test_researchers_do_not_annotate():
    researcher = user_create(username="res", role="researcher", password="pw-123456")
    client = Client()
    client.force_login(researcher)
    assert client.get("/annotate/").status_code == 403
    assert api_as(researcher).post("/api/annotate/next/").status_code == 403


def test_annotators_are_kept_out_of_the_admin():
    client = Client()
    client.force_login(make_annotator())
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_admins_manage_annotation_models_in_the_admin():
    admin = user_create(username="boss", role="admin", password="pw-123456")
    client = Client()
    client.force_login(admin)
    for path in ["/admin/annotation/comparison/", "/admin/annotation/item/", "/admin/annotation/guideline/add/", "/admin/auth/user/"]:
        assert client.get(path).status_code == 200, path


def test_researchers_see_checkpoints_and_batches_but_not_comparisons_or_users():
    researcher = user_create(username="res", role="researcher", password="pw-123456")
    client = Client()
    client.force_login(researcher)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/annotation/comparison/").status_code == 403
    assert client.get("/admin/auth/user/").status_code == 403
    assert researcher.has_perm("generation.add_checkpoint") and researcher.has_perm("batches.view_batch")
    assert not researcher.has_perm("batches.change_batch") and not researcher.has_perm("generation.delete_checkpoint")


def test_home_sends_each_role_to_its_door():
    client = Client()
    client.force_login(make_annotator())
    assert client.get("/")["Location"] == "/annotate/"
    client.force_login(user_create(username="boss", role="admin", password="pw-123456"))
    assert client.get("/")["Location"] == "/admin/"
    client.force_login(user_create(username="res", role="researcher", password="pw-123456"))
    assert client.get("/")["Location"] == runs_dashboard_or_admin()


def runs_dashboard_or_admin() -> str:
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse("runs:dashboard")
    except NoReverseMatch:
        return "/admin/"
