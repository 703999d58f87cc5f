"""Who gets what from every endpoint: the role x endpoint matrix, generated from the URL conf and
the OpenAPI schema.

`EXPECTED` holds one row per operation (API operations from the schema, pages from the URL conf)
with the status each role gets. A new endpoint without a row fails
`test_every_endpoint_has_an_expected_permission_row`, so nobody adds a route without deciding who
may use it. Ids in paths name objects that belong to someone else (an annotator gets a 404 for
another annotator's assignment, the same as for one that does not exist) or, for staff objects,
that exist (a checkpoint) or do not (deployments, batches, runs: 404 for the roles that may look).
Bodies are empty (`{}`, or an empty form): an allowed role gets the validation error (400), a
refused one 403 before anything is read. The admin site has its own permission system: its index
is in the matrix, its model pages in `test_the_admin_site_is_for_staff_only`.
"""
from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator

from annotation_site.annotation import services
from annotation_site.annotation.models import Comparison
from annotation_site.generation.models import Checkpoint, CheckpointKind
from tests.annotation_site.annotation.factories import make_ready_item
from tests.security.conftest import ROLES, api_client_as, make_user, page_client_as

ANON, ANNOTATOR, RESEARCHER, ADMIN = ROLES
LOGIN = 302  # a page sends anonymous users to the login page
NO_CREDENTIALS = 401  # an API request without credentials (WWW-Authenticate: Token)


def statuses(anonymous: int, annotator: int, researcher: int, admin: int) -> dict[str, int]:
    return {ANON: anonymous, ANNOTATOR: annotator, RESEARCHER: researcher, ADMIN: admin}


def annotating(status: int) -> dict[str, int]:
    """Annotators and admins (who may try a guideline out); researchers do not rate."""
    return statuses(NO_CREDENTIALS, status, 403, status)


def staff(status: int) -> dict[str, int]:
    """Researchers and admins."""
    return statuses(NO_CREDENTIALS, 403, status, status)


def admins(status: int) -> dict[str, int]:
    return statuses(NO_CREDENTIALS, 403, 403, status)


def research_pages(status: int) -> dict[str, int]:
    return statuses(LOGIN, 403, status, status)


EXPECTED: dict[tuple[str, str], dict[str, int]] = {
    # --- annotation API (own objects only: another annotator's assignment is a 404) -----------------
    ("POST", "/api/auth/token/"): statuses(400, 400, 400, 400),
    ("POST", "/api/annotate/next/"): annotating(200),
    ("GET", "/api/assignments/{assignment_id}/"): annotating(404),
    ("POST", "/api/assignments/{assignment_id}/comparison/"): annotating(400),
    ("POST", "/api/assignments/{assignment_id}/demonstration/"): annotating(400),
    ("POST", "/api/assignments/{assignment_id}/skip/"): annotating(400),
    ("GET", "/api/me/progress/"): annotating(200),
    ("GET", "/api/queue/status/"): annotating(200),
    ("POST", "/api/prompts/"): annotating(400),
    ("POST", "/api/comparisons/{comparison_id}/continue/"): annotating(400),
    ("POST", "/api/comparisons/{comparison_id}/amend/"): annotating(400),
    ("POST", "/api/prompts/queue/"): staff(400),
    # --- checkpoints, deployments, generation ---------------------------------------------------------
    ("GET", "/api/checkpoints/"): staff(200),
    ("POST", "/api/checkpoints/"): staff(400),
    ("POST", "/api/checkpoints/register/"): staff(400),
    ("GET", "/api/checkpoints/{checkpoint_id}/"): staff(200),
    ("PATCH", "/api/checkpoints/{checkpoint_id}/"): staff(200),
    ("GET", "/api/deployments/"): staff(200),
    ("POST", "/api/deployments/"): staff(400),
    ("GET", "/api/deployments/{deployment_id}/"): staff(404),
    ("PATCH", "/api/deployments/{deployment_id}/"): staff(404),
    ("POST", "/api/deployments/{deployment_id}/health-check/"): staff(404),
    ("POST", "/api/deployments/{deployment_id}/stop-server/"): staff(404),
    ("GET", "/api/generation/status/"): staff(200),
    ("POST", "/api/generation/fill/"): staff(202),
    # --- batches: researchers read, admins close and re-export ------------------------------------------
    ("GET", "/api/batches/"): staff(200),
    ("POST", "/api/batches/close/"): admins(201),  # {} closes the current week
    ("GET", "/api/batches/{batch_id}/"): staff(404),
    ("POST", "/api/batches/{batch_id}/export/"): admins(404),
    # --- training runs ------------------------------------------------------------------------------------
    ("GET", "/api/runs/"): staff(200),
    ("POST", "/api/runs/"): staff(400),
    ("GET", "/api/runs/configs/"): staff(200),
    ("GET", "/api/runs/accelerate-configs/"): staff(200),
    # --- evaluation -----------------------------------------------------------------------------------------
    ("GET", "/api/leaderboard/"): staff(200),
    # --- quality control: researchers read, admins act ------------------------------------------------------
    ("GET", "/api/quality/annotators/"): staff(200),
    ("GET", "/api/quality/summary/"): staff(200),
    ("GET", "/api/runs/compare/"): staff(400),  # without the runs to compare
    ("GET", "/api/runs/{run_id}/"): staff(404),
    ("GET", "/api/runs/{run_id}/progress/"): staff(404),
    ("GET", "/api/runs/{run_id}/eval/"): staff(404),
    ("POST", "/api/runs/{run_id}/cancel/"): staff(404),
    ("POST", "/api/runs/{run_id}/deploy/"): staff(404),
    # --- the weekly loop -------------------------------------------------------------------------------------
    ("GET", "/api/loop/iterations/"): staff(200),
    ("GET", "/api/loop/iterations/{iteration_id}/"): staff(404),
    ("POST", "/api/loop/iterations/{iteration_id}/retry/"): staff(404),
    ("POST", "/api/loop/iterations/{iteration_id}/cancel/"): staff(404),
    ("POST", "/api/loop/iterations/{iteration_id}/canary/promote/"): staff(404),
    ("POST", "/api/loop/iterations/{iteration_id}/canary/rollback/"): staff(404),
    ("POST", "/api/loop/{definition_id}/run/"): staff(404),
    # --- schema and docs ------------------------------------------------------------------------------------
    ("GET", "/api/schema/"): statuses(NO_CREDENTIALS, 200, 200, 200),  # signed-in users only
    # The docs are a page for browsers: a token client has no session and goes to the login page
    # (tests/annotation_site/accounts cover signed-in users seeing it).
    ("GET", "/api/docs/"): statuses(LOGIN, LOGIN, LOGIN, LOGIN),
    # --- pages --------------------------------------------------------------------------------------------------
    ("GET", "/"): statuses(LOGIN, 302, 302, 302),  # each role to its own door
    ("GET", "/favicon.ico"): statuses(301, 301, 301, 301),  # to the static icon, for everyone
    ("GET", "/annotate/"): statuses(LOGIN, 200, 403, 200),
    ("GET", "/accounts/login/"): statuses(200, 200, 200, 200),
    ("POST", "/accounts/logout/"): statuses(302, 302, 302, 302),
    ("GET", "/admin/"): statuses(LOGIN, LOGIN, 200, 200),  # non-staff users are sent to the admin login
    ("GET", "/batches/{batch_id}/download/"): statuses(LOGIN, 403, 404, 404),
    ("GET", "/runs/"): research_pages(200),
    ("GET", "/runs/launch/"): research_pages(200),
    ("POST", "/runs/launch/"): research_pages(200),  # the form again, with its errors
    ("GET", "/runs/compare/"): research_pages(200),
    ("GET", "/leaderboard/"): research_pages(200),
    ("GET", "/quality/"): research_pages(200),
    ("GET", "/quality/annotators/{annotator_id}/"): research_pages(200),
    ("GET", "/quality/review/"): statuses(LOGIN, 403, 403, 200),
    ("POST", "/quality/review/refresh/"): statuses(LOGIN, 403, 403, 302),
    ("GET", "/checkpoints/{checkpoint_id}/"): research_pages(200),
    ("GET", "/progress/"): research_pages(200),
    ("GET", "/progress/{name}.png"): statuses(404, 404, 404, 404),  # the matrix fills {name} with no figure's name
    ("GET", "/runs/{run_id}/"): research_pages(404),
    ("GET", "/runs/{run_id}/curves.png"): research_pages(404),
    ("GET", "/runs/{run_id}/plots/{name}"): research_pages(404),
    ("POST", "/runs/{run_id}/cancel/"): research_pages(404),
    ("POST", "/runs/{run_id}/deploy/"): research_pages(404),
    ("GET", "/loop/"): research_pages(200),
    ("GET", "/loop/new/"): research_pages(200),
    ("POST", "/loop/new/"): research_pages(200),  # the form again
    ("GET", "/loop/{definition_id}/"): research_pages(404),
    ("POST", "/loop/{definition_id}/run/"): research_pages(404),
    ("GET", "/loop/iterations/{iteration_id}/"): research_pages(404),
    ("POST", "/loop/iterations/{iteration_id}/retry/"): research_pages(404),
    ("POST", "/loop/iterations/{iteration_id}/cancel/"): research_pages(404),
    ("POST", "/loop/iterations/{iteration_id}/canary/promote/"): research_pages(404),
    ("POST", "/loop/iterations/{iteration_id}/canary/rollback/"): research_pages(404),
}


# --- what the site has -----------------------------------------------------------------------------------


def _django_route_to_template(route: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def url_conf_paths() -> set[str]:
    """Every route of the URL conf as a path template ("/runs/{run_id}/"), the admin site as "/admin/"."""
    found: set[str] = set()

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                if getattr(pattern, "app_name", None) == "admin":
                    found.add("/" + route)
                else:
                    walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern):
                found.add("/" + _django_route_to_template(route))

    walk(get_resolver().url_patterns, "")
    return found


def schema_operations(*, with_body: bool = False) -> set[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if method in {"get", "post", "put", "patch", "delete"} and (not with_body or "requestBody" in operation)
    }


def test_every_endpoint_has_an_expected_permission_row():
    api_operations = schema_operations()
    expected_paths = {path for _, path in EXPECTED}
    missing_operations = api_operations - set(EXPECTED)
    missing_routes = {path for path in url_conf_paths() if path not in expected_paths}
    assert not missing_operations, f"API operations with no row in EXPECTED: {sorted(missing_operations)}"
    assert not missing_routes, f"URL routes with no row in EXPECTED: {sorted(missing_routes)}"


def test_every_row_names_an_endpoint_that_exists():
    routes = url_conf_paths()
    stale = {key for key in EXPECTED if key[1] not in routes}
    assert not stale, f"rows for endpoints that are gone: {sorted(stale)}"


# --- what each role gets ----------------------------------------------------------------------------------------


@pytest.fixture
def world(db, settings, tmp_path, celery_eager):
    """An annotator's assignment and comparison (someone else's, for the annotator under test), a
    checkpoint, and a user per role."""
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.CHECKPOINT_ROOT = tmp_path / "checkpoints"
    make_ready_item()
    make_ready_item()
    owner = make_user(ANNOTATOR, "owner")
    submitted = services.assignment_claim_next(annotator=owner)
    services.comparison_submit(assignment=submitted, annotator=owner, chosen="A", rating="better")
    claimed = services.assignment_claim_next(annotator=owner)
    checkpoint = Checkpoint.objects.create(name="sft-v1", path=str(tmp_path / "sft-v1"), kind=CheckpointKind.SFT)
    ids = {
        "assignment_id": claimed.pk,
        "comparison_id": Comparison.objects.get().pk,
        "checkpoint_id": checkpoint.pk,
        "deployment_id": 999_999,
        "batch_id": 999_999,
        "run_id": 999_999,
        "definition_id": 999_999,
        "iteration_id": 999_999,
        "name": "loss.png",
        "annotator_id": owner.pk,
    }
    users = {ANON: None, **{role: make_user(role) for role in ROLES[1:]}}
    return ids, users


def _request(method: str, template: str, role: str, world):
    ids, users = world
    path = template.format(**ids)
    if path.startswith("/api/"):
        client = api_client_as(users[role])
        return getattr(client, method.lower())(path, {} if method != "GET" else None, format="json")
    client = page_client_as(users[role])
    return getattr(client, method.lower())(path)


@pytest.mark.parametrize(("method", "template"), sorted(EXPECTED))
def test_each_role_gets_the_expected_status(method, template, world):
    got = {role: _request(method, template, role, world).status_code for role in ROLES}
    assert got == EXPECTED[(method, template)]


@pytest.mark.parametrize("path", ["/admin/annotation/comparison/", "/admin/auth/user/", "/admin/generation/checkpoint/"])
def test_the_admin_site_is_for_staff_only(path, world):
    _, users = world
    got = {role: page_client_as(users[role]).get(path).status_code for role in ROLES}
    assert got[ANON] == got[ANNOTATOR] == LOGIN
    assert got[ADMIN] == 200


@pytest.mark.parametrize(("method", "template"), sorted(schema_operations(with_body=True)))
def test_json_nested_too_deep_is_a_4xx_on_every_json_endpoint_for_every_role(method, template, world):
    ids, users = world
    body = "[" * 50_000 + "]" * 50_000
    for role in ROLES:
        client = api_client_as(users[role])
        response = getattr(client, method.lower())(template.format(**ids), body, content_type="application/json")
        assert 400 <= response.status_code < 500, (role, response.status_code)
        assert set(response.json()) >= {"error", "message"}
