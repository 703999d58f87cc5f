"""The production stack's files and the weekly schedule. No docker engine runs here, so the compose
file is checked as data (and with `docker compose config` where the client has the plugin): every
service has a health check and a restart policy, every command it runs exists, the queues the
code routes to are consumed, every setting is in .env.example, and each image's requirements
resolve (`pip install --dry-run`, slow, skipped where no package registry answers)."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_stack_has_every_service_the_platform_needs(compose):
    assert set(compose["services"]) == {
        "postgres", "redis", "migrate", "web", "worker", "beat", "training-worker", "serving-worker", "flower",
    }  # fmt: skip


def test_site_services_share_one_configuration_pointing_at_postgres_and_redis(compose):
    for name in ("migrate", "web", "worker", "beat", "training-worker", "serving-worker", "flower"):
        env = compose["services"][name]["environment"]
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
    for name in ("migrate", "web", "worker", "beat", "training-worker"):
        env = compose["services"][name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://rlhf:") and env["DATABASE_URL"].endswith("@postgres:5432/rlhf")
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert env["DEBUG"] == "false" and "SECRET_KEY" in env and "EXPORT_PSEUDONYM_KEY" in env
        assert "exports:/data/exports" in compose["services"][name]["volumes"]
        assert compose["services"][name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker", "beat", "training-worker", "serving-worker"):
        assert compose["services"][name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_web_runs_gunicorn_and_workers_and_beat_run_celery(compose):
    services = compose["services"]
    assert services["web"]["command"][:2] == ["gunicorn", "annotation_site.wsgi:application"]
    assert services["worker"]["command"][:5] == ["celery", "-A", "annotation_site", "worker", "--queues"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "annotation_site", "beat"]
    assert "--queues" in services["training-worker"]["command"]
    assert services["training-worker"]["command"][services["training-worker"]["command"].index("--queues") + 1] == "training"


def test_the_training_and_serving_workers_reserve_nvidia_gpus(compose):
    for name in ("training-worker", "serving-worker"):
        [device] = compose["services"][name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert compose["services"]["training-worker"]["build"]["target"] == "training"
    serving = compose["services"]["serving-worker"]
    assert serving["build"]["target"] == "serving" and "checkpoints:/data/checkpoints:ro" in serving["volumes"]
    # Launched servers listen on every interface and are registered under the service's name.
    assert serving["environment"]["SERVING_BIND_HOST"] == "0.0.0.0"
    assert serving["environment"]["SERVING_ADVERTISE_HOST"] == "serving-worker"
    first, last = int(serving["environment"]["SERVING_PORT_FIRST"]), int(serving["environment"]["SERVING_PORT_LAST"])
    assert serving["expose"] == [f"{first}-{last}"]


def test_the_serving_image_is_the_official_vllm_image_running_the_serving_worker():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM vllm/vllm-openai:v\$\{VLLM_VERSION\} AS serving$", dockerfile, re.MULTILINE)
    serving = dockerfile[dockerfile.index("AS serving"):]
    assert "ENTRYPOINT []" in serving and "-c /tmp/vllm-image.txt" in serving
    assert "requirements-gpu.txt" in dockerfile[dockerfile.index("AS training"):dockerfile.index("AS serving")]


def test_the_dockerfile_builds_the_targets_compose_uses(compose):
    dockerfile = (ROOT / "Dockerfile").read_text()
    targets = {line.split()[-1] for line in dockerfile.splitlines() if line.startswith("FROM ")}
    for service in compose["services"].values():
        if "build" in service:
            assert service["build"]["target"] in targets
    assert '"torch==2.13.0"' in dockerfile
    assert targets >= {"app", "training", "serving"}
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


# --- Health checks, restart policies, commands ------------------------------------------------------


def _command(service: dict) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def _health_command(service: dict) -> list[str]:
    test = service["healthcheck"]["test"]
    return shlex.split(test[1]) if test[0] == "CMD-SHELL" else test[1:]


def test_every_service_has_a_health_check_and_a_restart_policy(compose):
    for name, service in compose["services"].items():
        assert service.get("restart") in {"unless-stopped", "always", "on-failure"}, name
        health = service.get("healthcheck")
        assert health and health["test"][0] in {"CMD", "CMD-SHELL"} and not health.get("disable"), name
        assert {"interval", "timeout", "retries"} <= set(health), name


def test_each_worker_is_pinged_by_its_own_node_name(compose):
    for name in ("worker", "training-worker", "serving-worker"):
        service = compose["services"][name]
        command = _command(service)
        assert command[command.index("-n") + 1] == "celery@%h", name
        # $$ reaches the container's shell as $: compose would substitute a single $ from the host.
        assert service["healthcheck"]["test"][0] == "CMD-SHELL"
        assert "inspect ping" in service["healthcheck"]["test"][1] and "-d celery@$$HOSTNAME" in service["healthcheck"]["test"][1]


def test_the_web_probes_readiness_and_beat_its_schedule_and_flower_its_health(compose):
    from annotation_site.health import READINESS_PATH

    assert f"http://127.0.0.1:8000{READINESS_PATH}" in " ".join(compose["services"]["web"]["healthcheck"]["test"])
    assert _health_command(compose["services"]["beat"])[:3] == ["python", "manage.py", "check_beat"]
    assert "http://127.0.0.1:5555/healthcheck" in " ".join(compose["services"]["flower"]["healthcheck"]["test"])
    assert compose["services"]["flower"]["ports"] == ["${FLOWER_PORT:-5555}:5555"]
    assert compose["services"]["flower"]["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")


def test_the_queues_the_code_routes_to_are_each_consumed_by_a_worker(compose, settings):
    from annotation_site.celery import SERVING_QUEUE

    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} | {"celery"}
    consumed = {}
    for name, service in compose["services"].items():
        command = _command(service)
        if command[:4] == ["celery", "-A", "annotation_site", "worker"]:
            consumed[name] = set(command[command.index("--queues") + 1].split(","))
    assert set().union(*consumed.values()) == routed
    assert consumed["serving-worker"] == {SERVING_QUEUE}


def _manage_and_celery_commands(compose) -> list[list[str]]:
    commands = []
    for service in compose["services"].values():
        if "command" in service:
            commands.append(_command(service))
        if "healthcheck" in service:
            commands.append(_health_command(service))
    return commands


def test_every_manage_py_command_of_the_stack_exists():
    from django.core.management import get_commands

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    names = {command[2] for command in _manage_and_celery_commands(compose) if command[:2] == ["python", "manage.py"]}
    assert names == {"migrate", "check_beat"} and names <= set(get_commands())


def test_every_celery_command_of_the_stack_parses_with_the_site_app(tmp_path):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    celery_commands = [c for c in _manage_and_celery_commands(compose) if c[:3] == ["celery", "-A", "annotation_site"]]
    subcommands = {tuple(c[3:5]) if c[3] == "inspect" else (c[3],) for c in celery_commands}
    assert subcommands == {("worker",), ("beat",), ("flower",), ("inspect", "ping")}
    for subcommand in subcommands:
        result = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "annotation_site", *subcommand, "--help"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "VAR_DIR": str(tmp_path / "var")},
        )
        assert result.returncode == 0 and "Usage" in result.stdout, (subcommand, result.stderr[-2000:])
    assert all("gunicorn" not in c[0] or c[1] == "annotation_site.wsgi:application" for c in celery_commands)


@pytest.mark.postgres
@pytest.mark.redis
def test_the_workers_health_check_command_answers_for_a_running_worker_only(postgres, tmp_path):
    """The compose file's own health-check line, run by a shell as the container would."""
    import os
    import time

    from tests.conftest import require
    from tests.support.site_processes import CeleryWorker, redis_is_up, site_env

    broker = os.environ.get("BATCHES_TEST_BROKER_URL", "redis://127.0.0.1:6379/4")
    require(redis_is_up(broker), f"needs Redis at {broker}")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    # Compose turns $$ into $; the container's shell then expands $HOSTNAME.
    check = compose["services"]["worker"]["healthcheck"]["test"][1].replace("$$", "$")
    env = {**site_env(broker_url=broker, VAR_DIR=str(tmp_path / "var")), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    container = f"container-{time.monotonic_ns()}"
    worker = CeleryWorker(env, tmp_path / "worker.log", name=f"celery@{container}")
    try:
        alive = subprocess.run(["sh", "-c", check], cwd=ROOT, env={**env, "HOSTNAME": container}, capture_output=True, text=True, timeout=120)
        other = subprocess.run(["sh", "-c", check], cwd=ROOT, env={**env, "HOSTNAME": container + "-gone"}, capture_output=True, text=True, timeout=120)
    finally:
        worker.stop()
    assert alive.returncode == 0 and "pong" in alive.stdout, alive.stdout + alive.stderr
    assert other.returncode != 0


# --- Settings ------------------------------------------------------------------------------------

_READ = re.compile(r"env_(?:str|int|bool|float|list|secret)\(\s*\"([A-Z0-9_]+)\"")


def _example_variables() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if re.match(r"^[A-Z0-9_]+=", line)}


def test_every_variable_the_settings_read_is_in_env_example():
    read = set()
    for path in [*(ROOT / "annotation_site").rglob("*.py"), ROOT / "gunicorn.conf.py"]:
        read |= set(_READ.findall(path.read_text()))
    assert {"SECRET_KEY", "SERVING_ADVERTISE_HOST", "RUN_ACCELERATE_CONFIG_DIRS"} <= read
    assert read - _example_variables() == set()


def test_every_variable_the_compose_file_substitutes_is_in_env_example():
    substituted = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()))
    assert {"POSTGRES_PASSWORD", "FLOWER_BASIC_AUTH", "SERVING_GPUS"} <= substituted
    assert substituted - _example_variables() == set()


# --- Images' requirements resolve -----------------------------------------------------------------


def _pip_dry_run(tmp_path, *requirements: str) -> None:
    pip = [sys.executable, "-m", "pip"]
    reachable = subprocess.run([*pip, "index", "versions", "django"], capture_output=True, text=True, timeout=120)
    if reachable.returncode != 0:
        pytest.skip(f"no package registry answers here: {reachable.stderr.strip()[-300:]}")
    result = subprocess.run(
        [*pip, "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(tmp_path / "report.json"),
         *requirements],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_the_app_and_training_images_requirements_resolve(tmp_path):
    _pip_dry_run(tmp_path, "-r", "requirements.txt", "-r", "requirements-gpu.txt")


@pytest.mark.slow
def test_the_serving_images_requirements_resolve_beside_its_vllm(tmp_path):
    dockerfile = (ROOT / "Dockerfile").read_text()
    version = re.search(r"^ARG VLLM_VERSION=(\S+)$", dockerfile, re.MULTILINE).group(1)
    # As the image installs them: requirements.txt without the CPU machines' torch pin, beside vLLM.
    serving = tmp_path / "requirements-serving.txt"
    serving.write_text("".join(
        line + "\n" for line in (ROOT / "requirements.txt").read_text().splitlines() if not line.startswith("torch==")
    ))  # fmt: skip
    _pip_dry_run(tmp_path, f"vllm=={version}", "-r", str(serving))
