"""Schemathesis over the OpenAPI schema, as each role, against a live test server: no 5xx.

Bounded (SECURITY_FUZZ_EXAMPLES cases per operation and generation mode, 3 by default, and
SECURITY_FUZZ_BUDGET_S, 60 s per role) so that CI runs it in a few minutes; `bench/security_probe.py` runs the long
version by hand against gunicorn.
"""
from __future__ import annotations

import os

import pytest
from rest_framework.authtoken.models import Token

from tests.conftest import database_is_postgres, require
from tests.security.conftest import ROLES, make_user
from tests.support.schema_fuzz import fuzz_api

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

EXAMPLES = int(os.environ.get("SECURITY_FUZZ_EXAMPLES", "3"))
TIME_BUDGET_S = float(os.environ.get("SECURITY_FUZZ_BUDGET_S", "60"))


@pytest.mark.parametrize("role", ROLES)
def test_no_generated_request_gets_a_server_error(role, live_server, settings, tmp_path):
    require(database_is_postgres(), "needs PostgreSQL: set DATABASE_URL")
    require(settings.CELERY_BROKER_URL.startswith("redis://"), "needs the Redis broker: set CELERY_BROKER_URL")
    settings.CHECKPOINT_ROOT, settings.EXPORT_ROOT = tmp_path / "checkpoints", tmp_path / "exports"
    headers = {}
    if role != "anonymous":
        headers["Authorization"] = f"Token {Token.objects.create(user=make_user(role)).key}"
    base_url = live_server.url.replace("localhost", "127.0.0.1")  # no IPv6 attempt before each connection
    report = fuzz_api(base_url=base_url, headers=headers, max_examples=EXAMPLES, time_budget_s=TIME_BUDGET_S)
    assert report.operations > 0 and report.requests > 0
    assert not report.server_errors, "\n".join(report.server_errors[:20])
