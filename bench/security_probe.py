"""The long security probe: schemathesis over the whole OpenAPI schema, as every role, against
gunicorn (gunicorn.conf.py, DEBUG off) on PostgreSQL and Redis, counting server errors.

It creates its own database (`bench_security` on the server of DATABASE_URL, dropped afterwards),
migrates it, makes one user per role with an API token, serves the site with gunicorn and sends
--examples positive and as many negative cases to every operation as each role (anonymous,
annotator, researcher, admin), fresh random cases each run. Exit status 1 if any request got a 5xx.
CI runs the short version (tests/security/test_schema_fuzz.py).

    python bench/security_probe.py [--examples 200] [--budget-s 1800] [--broker redis://127.0.0.1:6379/9]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.annotate_load import drop_database, free_port, recreate_database, site_environment, start_gunicorn  # noqa: E402

ROLES = ("anonymous", "annotator", "researcher", "admin")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="cases per operation and generation mode")
    parser.add_argument("--budget-s", type=float, default=1800, help="time budget per role")
    parser.add_argument("--database", default="bench_security")
    parser.add_argument("--server", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--broker", default=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/9"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="bench-security-")
    database_url = recreate_database(args)
    env = {
        **site_environment(database_url, str(Path(work) / "var")),
        "CELERY_BROKER_URL": args.broker,
        "CHECKPOINT_ROOT": str(Path(work) / "checkpoints"),
        "EXPORT_ROOT": str(Path(work) / "exports"),
        "LOG_LEVEL": "ERROR",  # not one line per refused request
    }
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from annotation_site.accounts.services import user_create
    from tests.support.schema_fuzz import fuzz_api, openapi_schema

    call_command("migrate", verbosity=0)
    headers = {"anonymous": {}}
    for role in ROLES[1:]:
        user = user_create(username=f"probe-{role}", role=role, password="probe-password")
        headers[role] = {"Authorization": f"Token {Token.objects.create(user=user).key}"}
    port = free_port()
    server = start_gunicorn(args, env, port)
    failures = 0
    try:
        schema = openapi_schema()
        for role in ROLES:
            started = time.monotonic()
            report = fuzz_api(
                base_url=f"http://127.0.0.1:{port}", headers=headers[role], max_examples=args.examples,
                time_budget_s=args.budget_s, derandomize=False, schema=schema,
            )
            failures += len(report.server_errors)
            statuses = ", ".join(f"{status}: {count}" for status, count in sorted(report.statuses.items()))
            print(f"{role:>10}: {report.requests} requests over {report.operations} operations in "
                  f"{time.monotonic() - started:.0f} s{' (time budget spent)' if report.out_of_time else ''}; "
                  f"{len(report.server_errors)} server errors; statuses {statuses}", flush=True)
            for line in report.server_errors[:20]:
                print("    " + line)
    finally:
        server.terminate()
        server.wait(timeout=30)
        from django.db import connections

        connections.close_all()
        drop_database(args)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
