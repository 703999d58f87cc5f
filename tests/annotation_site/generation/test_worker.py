"""The fill task on a real Celery worker process and the real Redis broker (never eager mode).

The "web" side runs in a `manage.py shell` subprocess: an annotator writes a prompt, the
`items_need_samples` signal enqueues `fill_queue` on Redis, and the worker, with the tiny model
loaded in its local engine, generates the pair while the test only watches the database.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from annotation_site.annotation.models import Item, ItemStatus
from tests.annotation_site.generation.conftest import deploy_local
from tests.conftest import require

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

BROKER_URL = os.environ.get("GENERATION_TEST_BROKER_URL", "redis://127.0.0.1:6379/3")
ROOT = Path(django_settings.BASE_DIR)


def _redis_is_up(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def site_env(postgres, tmp_path):
    require(_redis_is_up(BROKER_URL), f"needs Redis at {BROKER_URL}")
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()  # this area's own Redis database: no stale tasks
    db = connection.settings_dict
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CELERY_", "TEST_DATABASE", "GENERATION_"))}
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        CELERY_BROKER_URL=BROKER_URL,
        VAR_DIR=str(tmp_path / "var"),
        DB_CONN_MAX_AGE="0",
        GENERATION_READY_TARGET="0",  # only the signal asks for the new prompt's pair
        GENERATION_MAX_TOKENS="8",
    )
    return env


def test_a_written_prompt_gets_its_pair_from_a_real_worker(site_env, tiny_model_dir, tmp_path):
    deploy_local(tiny_model_dir)
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "annotation_site", "worker", "--pool=solo", "--loglevel=INFO"],
            cwd=ROOT, env=site_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        code = (
            "from annotation_site.accounts.services import user_create\n"
            "from annotation_site.annotation.services import prompt_write\n"
            "user = user_create(username='ann', role='annotator', password='pw-123456')\n"
            "print(prompt_write(annotator=user, text='Plan a weekend in Porto', guideline_kind='helpfulness').pk)\n"
        )
        web = subprocess.run(
            [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
            cwd=ROOT, env=site_env, capture_output=True, text=True, timeout=120,
        )
        assert web.returncode == 0, web.stderr[-3000:]
        item_id = int(web.stdout.strip().splitlines()[-1])
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and Item.objects.get(pk=item_id).status != ItemStatus.READY:
            assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
    item = Item.objects.select_related("sample_a", "sample_b").get(pk=item_id)
    assert item.status == ItemStatus.READY, log.read_text(errors="replace")[-3000:]
    assert item.sample_a.sampling_params["engine"] == "local" and item.sample_b.text.strip()
    assert "fill_queue" in log.read_text(errors="replace")
