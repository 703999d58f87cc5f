"""/healthz (liveness) and /readyz (database and broker reachable), with each service up and down.

The down cases run the site in a fresh process pointed at closed ports, as a container would be
when PostgreSQL or Redis is not there; nothing is mocked."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require
from tests.support.site_processes import redis_is_up

ROOT = Path(__file__).resolve().parents[2]
BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
SECRET = "s3cret-password-never-echoed"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again once the socket is


def probe(path: str, **env: str) -> tuple[int, dict]:
    """GET `path` from a fresh site process with DEBUG off and a Host the site does not serve."""
    code = (
        "import json, django\n"
        "django.setup()\n"
        "from django.test import Client\n"
        f"response = Client(HTTP_HOST='10.1.2.3').get({path!r})\n"
        "print(response.status_code, response.content.decode())\n"
    )
    base = {key: value for key, value in os.environ.items() if not key.startswith(("CELERY_", "DATABASE_URL"))}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**base, "DJANGO_SETTINGS_MODULE": "annotation_site.settings", "DEBUG": "false",
             "ALLOWED_HOSTS": "example.org", "SECRET_KEY": "k" * 50, "EXPORT_PSEUDONYM_KEY": "p" * 50, **env},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    status, _, body = result.stdout.strip().splitlines()[-1].partition(" ")
    return int(status), json.loads(body)


@pytest.fixture
def services_up(postgres):
    require(BROKER_URL.startswith("redis://") and redis_is_up(BROKER_URL), "needs Redis: set CELERY_BROKER_URL=redis://...")
    from django.db import connection

    db = connection.settings_dict
    return {"DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "CELERY_BROKER_URL": BROKER_URL}  # fmt: skip


@pytest.mark.postgres
@pytest.mark.redis
def test_ready_when_the_database_and_the_broker_answer(services_up):
    assert probe("/readyz", **services_up) == (200, {"status": "ready", "checks": {"database": "ok", "broker": "ok"}})
    assert probe("/healthz", **services_up) == (200, {"status": "ok"})


@pytest.mark.postgres
def test_not_ready_and_saying_so_when_the_broker_is_down(services_up):
    status, body = probe("/readyz", **{**services_up, "CELERY_BROKER_URL": f"redis://127.0.0.1:{closed_port()}/0"})
    assert status == 503 and body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok" and body["checks"]["broker"].startswith("unavailable: ")


@pytest.mark.redis
def test_not_ready_when_the_database_is_down_and_no_secret_is_echoed(services_up):
    down = f"postgres://rlhf:{SECRET}@127.0.0.1:{closed_port()}/rlhf"
    status, body = probe("/readyz", **{**services_up, "DATABASE_URL": down})
    assert status == 503 and body["checks"] == {"database": "unavailable: OperationalError", "broker": "ok"}
    assert SECRET not in json.dumps(body) and "127.0.0.1" not in json.dumps(body)


def test_alive_with_neither_database_nor_broker():
    down = {
        "DATABASE_URL": f"postgres://rlhf:{SECRET}@127.0.0.1:{closed_port()}/rlhf",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{closed_port()}/0",
    }
    assert probe("/healthz", **down) == (200, {"status": "ok"})
    status, body = probe("/readyz", **down)
    assert status == 503 and set(body["checks"]) == {"database", "broker"}
    assert all(value.startswith("unavailable: ") for value in body["checks"].values())
