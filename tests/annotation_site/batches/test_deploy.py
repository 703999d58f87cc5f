"""The production stack's files and the weekly schedule. No docker engine runs here, so the compose
file is checked as data (and with `docker compose config` where the client has the plugin)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_stack_has_every_service_the_platform_needs(compose):
    assert set(compose["services"]) == {
        "postgres", "redis", "migrate", "web", "worker", "beat", "training-worker", "vllm",
    }  # fmt: skip


def test_site_services_share_one_configuration_pointing_at_postgres_and_redis(compose):
    for name in ("migrate", "web", "worker", "beat", "training-worker"):
        env = compose["services"][name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://rlhf:") and env["DATABASE_URL"].endswith("@postgres:5432/rlhf")
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert env["DEBUG"] == "false" and "SECRET_KEY" in env and "EXPORT_PSEUDONYM_KEY" in env
        assert "exports:/data/exports" in compose["services"][name]["volumes"]
        assert compose["services"][name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker", "beat", "training-worker"):
        assert compose["services"][name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_web_runs_gunicorn_and_workers_and_beat_run_celery(compose):
    services = compose["services"]
    assert services["web"]["command"][:2] == ["gunicorn", "annotation_site.wsgi:application"]
    assert services["worker"]["command"][:5] == ["celery", "-A", "annotation_site", "worker", "--queues"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "annotation_site", "beat"]
    assert "--queues" in services["training-worker"]["command"]
    assert services["training-worker"]["command"][services["training-worker"]["command"].index("--queues") + 1] == "training"


def test_the_training_worker_and_vllm_reserve_nvidia_gpus(compose):
    for name in ("training-worker", "vllm"):
        [device] = compose["services"][name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert compose["services"]["training-worker"]["build"]["target"] == "training"
    assert compose["services"]["vllm"]["image"].startswith("vllm/vllm-openai:")
    assert "checkpoints:/data/checkpoints:ro" in compose["services"]["vllm"]["volumes"]
    assert "--model" in compose["services"]["vllm"]["command"]


def test_the_dockerfile_builds_the_targets_compose_uses(compose):
    dockerfile = (ROOT / "Dockerfile").read_text()
    targets = {line.split()[-1] for line in dockerfile.splitlines() if line.startswith("FROM ")}
    for service in compose["services"].values():
        if "build" in service:
            assert service["build"]["target"] in targets
    assert '"torch==2.13.0"' in dockerfile
    assert ".venv" in (ROOT / ".dockerignore").read_text().split()


def test_docker_compose_config_accepts_the_file_where_the_plugin_exists(tmp_path):
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed here; the file is checked as data above")
    result = subprocess.run(
        [docker, "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True, text=True, env={"SECRET_KEY": "x", "EXPORT_PSEUDONYM_KEY": "x", "POSTGRES_PASSWORD": "x", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_the_weekly_close_runs_monday_at_midnight_utc_from_the_database():
    from django_celery_beat.models import PeriodicTask

    weekly = PeriodicTask.objects.get(task="annotation_site.batches.tasks.batch_close_weekly")
    crontab = weekly.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week, crontab.day_of_month, crontab.month_of_year) == (
        "0", "0", "1", "*", "*",
    )  # fmt: skip
    assert str(crontab.timezone) == "UTC" and weekly.enabled
    watchdog = PeriodicTask.objects.get(task="annotation_site.batches.tasks.batch_exports_resume")
    assert watchdog.interval.every == 5 and watchdog.interval.period == "minutes"
    from annotation_site.celery import app

    app.loader.import_default_modules()
    assert {weekly.task, watchdog.task} <= set(app.tasks)
