"""gunicorn.conf.py: the settings docker-compose, the Dockerfile and bench/annotate_load.py serve with."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _print_config(**env) -> subprocess.CompletedProcess:
    gunicorn = Path(sys.executable).parent / "gunicorn"
    return subprocess.run(
        [str(gunicorn), "--print-config", "annotation_site.wsgi:application"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_site_is_served_by_threaded_workers_sized_from_the_environment():
    printed = _print_config(WEB_CONCURRENCY="3", WEB_THREADS="5", WEB_BIND="127.0.0.1:9001")
    assert printed.returncode == 0, printed.stderr
    config = {name.strip(): value.strip() for name, _, value in (line.partition("=") for line in printed.stdout.splitlines())}
    assert config["worker_class"] == "gthread"
    assert (config["workers"], config["threads"]) == ("3", "5")
    assert config["bind"] == "['127.0.0.1:9001']"
    assert config["keepalive"] == "30"


def test_a_bad_size_is_refused_with_the_variable_named():
    printed = _print_config(WEB_THREADS="many")
    assert printed.returncode != 0
    assert "WEB_THREADS='many' is not an integer" in printed.stderr
