"""Liveness and readiness of the web process, for the compose health check and load balancers.

- `GET /healthz`: the process answers (no database, no broker): 200 {"status": "ok"}.
- `GET /readyz`: the database and the Celery broker are reachable: 200 {"status": "ready", ...},
  else 503 {"status": "unavailable", "checks": {"database": "unavailable: OperationalError", ...}}.

Served by a middleware placed first, so a probe needs no session, no login, and no Host header
from ALLOWED_HOSTS (a container probes itself at 127.0.0.1), and is never redirected to HTTPS.
Answers name what failed by its exception type only: no URL, host or password is echoed.
Hand-written rather than django-health-check: two checks, and the probe must bypass host
validation, which a URL-routed view cannot.
"""
from __future__ import annotations

import logging

from django.db import connection
from django.http import JsonResponse

logger = logging.getLogger(__name__)

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"


def database_check() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def broker_check() -> None:
    from django.conf import settings

    from annotation_site.celery import app

    with app.connection_for_write() as broker:
        broker.ensure_connection(max_retries=1, timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT)


CHECKS = {"database": database_check, "broker": broker_check}


def readiness() -> tuple[bool, dict[str, str]]:
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as error:  # noqa: BLE001 - any failure means not ready; its type says which
            logger.warning("readiness: %s unavailable: %s", name, type(error).__name__)
            results[name] = f"unavailable: {type(error).__name__}"
    return all(value == "ok" for value in results.values()), results


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info.rstrip("/")
        if path == LIVENESS_PATH:
            return _no_cache(JsonResponse({"status": "ok"}))
        if path == READINESS_PATH:
            ready, checks = readiness()
            body = {"status": "ready" if ready else "unavailable", "checks": checks}
            return _no_cache(JsonResponse(body, status=200 if ready else 503))
        return self.get_response(request)


def _no_cache(response):
    response["Cache-Control"] = "no-store"
    return response
