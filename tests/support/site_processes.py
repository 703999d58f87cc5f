"""Real site processes for tests: a Celery worker and `manage.py shell` runs against the test database.

Tests that need a real worker on the real Redis broker (not eager mode) start one with
`CeleryWorker(env, log)`; `site_env(...)` builds the environment pointing a child process at the
running test's PostgreSQL database and at the test area's own Redis database.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def redis_is_up(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def site_env(*, broker_url: str, drop_prefixes: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    """This process's environment for a child site process: the test database, the given broker."""
    from django.db import connection

    db = connection.settings_dict
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CELERY_", "TEST_DATABASE", *drop_prefixes))}
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        CELERY_BROKER_URL=broker_url,
        DB_CONN_MAX_AGE="0",
        **extra,
    )
    return env


def run_site(env: dict, code: str, **extra: str) -> str:
    """Run Python in a fresh site process (`manage.py shell -c`); returns the last line it printed."""
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


class CeleryWorker:
    """`celery -A annotation_site worker` (prefork, one child), started and ready, stopped on stop()."""

    def __init__(self, env: dict, log: Path, *, queues: str = "celery", name: str = ""):
        self.log = log
        self.name = name or f"test-{os.getpid()}-{time.monotonic_ns()}@%h"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "annotation_site", "worker", "--pool=prefork", "--concurrency=1",
             "--queues", queues, "--loglevel=INFO", "--without-gossip", "--without-mingle",
             "-n", self.name],
            cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.wait_for_log("ready.", timeout=60)

    def wait_for_log(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            assert self.process.poll() is None, self.log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        raise AssertionError(f"worker never logged {text!r}:\n{self.log.read_text(errors='replace')[-3000:]}")

    def pool_children(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                for child in self.pool_children():
                    child.kill()
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def tasks_sent_to(broker_url: str):
    """While inside, the tasks this test process enqueues (a service's `transaction.on_commit`) go to
    `broker_url`, the broker the test's real workers consume, whatever the suite's own broker is
    (CI: another Redis database; a developer machine: the filesystem broker). The Celery app reads
    its configuration once and keeps a connection pool and a producer pool, so the write URL, the
    transport options and both pools are swapped and put back; there is no public API for
    re-pointing a configured app. (`broker_write_url`, not `broker_url`: Celery reads the latter
    from the CELERY_BROKER_URL environment variable first, whatever the configuration says.)"""
    from annotation_site.celery import app

    conf = app.conf
    saved = conf.get("broker_write_url"), conf.broker_transport_options, app._pool, app.amqp._producer_pool
    conf.broker_write_url = broker_url
    conf.broker_transport_options = {"socket_connect_timeout": 2.0}
    app._pool = app.amqp._producer_pool = None
    try:
        yield
    finally:
        # Not closed: kombu keeps one pool per broker URL for the whole process, and the next test
        # sending to this URL would be handed the closed pool.
        conf.broker_write_url, conf.broker_transport_options, app._pool, app.amqp._producer_pool = saved
