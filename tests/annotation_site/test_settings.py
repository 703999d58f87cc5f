"""Production settings come from the environment: the compose stack's web service passes
`manage.py check --deploy`, and the site refuses to start with DEBUG off and a development key."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# What an operator puts in .env: the variables compose requires (${VAR:?...}).
SECRETS = {
    "SECRET_KEY": "k9V2q-0dXr7uTz4bW1mNf8sLp3yHc6gJ5aEo_RiKtY-vQnZx2wUe",
    "EXPORT_PSEUDONYM_KEY": "pseudonyms-3Fh8sK2pQ9wZ1xN7",
    "POSTGRES_PASSWORD": "db-password",
}

_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?error}, ${VAR?error} (the ':' forms also treat an empty value as unset)."""

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name") or match.group("bare"), match.group("op"), match.group("arg")
        is_set = name in env and (env[name] != "" or not (op or "").startswith(":"))
        if op in (":-", "-"):
            return env[name] if is_set else arg
        if op in (":?", "?") and not is_set:
            raise KeyError(f"compose needs {name}: {arg}")
        return env.get(name, "")

    return _VARIABLE.sub(substitute, value)


def test_interpolation_follows_compose_for_defaults_and_required_variables():
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d}/${EMPTY:-d}/${EMPTY-d}/${UNSET-d}/$SET/$$SET", env) == "x/d//d/x/$SET"
    with pytest.raises(KeyError, match="needs EMPTY"):
        interpolate("${EMPTY:?set it}", env)


def compose_environment(service: str, dotenv: dict[str, str]) -> dict[str, str]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment = compose["services"][service]["environment"]
    return {name: interpolate(str(value), dotenv) for name, value in environment.items()}


def run_site(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """manage.py with exactly this environment (nothing inherited but PATH)."""
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**env, "PATH": os.environ["PATH"]},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_compose_web_service_passes_the_deployment_checks_without_a_warning():
    env = compose_environment("web", SECRETS)
    result = run_site(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout


def test_the_compose_web_service_gets_secure_cookies_hsts_ssl_redirect_and_database_health_checks():
    env = compose_environment("web", SECRETS)
    shown = run_site(env, "shell", "-c", (
        "from django.conf import settings as s; d = s.DATABASES['default']; print(repr(("
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS > 0, "
        "s.SECURE_PROXY_SSL_HEADER, d['CONN_HEALTH_CHECKS'], d['CONN_MAX_AGE'] > 0)))"
    ))  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1] == repr(
        (True, True, True, True, ("HTTP_X_FORWARDED_PROTO", "https"), True, True)
    )


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_the_site_without_each_secret(missing):
    with pytest.raises(KeyError, match=missing):
        compose_environment("web", {k: v for k, v in SECRETS.items() if k != missing})


def test_debug_off_with_the_embedded_development_secret_key_refuses_to_start():
    env = {**compose_environment("web", SECRETS), "SECRET_KEY": "dev-only-insecure-key-change-me-in-production"}
    result = run_site(env, "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured: DEBUG is off but SECRET_KEY is unset (the embedded development value)" in result.stderr
    assert "forge sessions" in result.stderr


def test_debug_off_with_an_empty_secret_key_refuses_to_start():
    result = run_site({**compose_environment("web", SECRETS), "SECRET_KEY": ""}, "check")
    assert result.returncode != 0 and "ImproperlyConfigured: DEBUG is off but SECRET_KEY is empty" in result.stderr


def test_debug_off_without_a_pseudonym_key_refuses_to_start():
    env = compose_environment("web", SECRETS)
    del env["EXPORT_PSEUDONYM_KEY"]
    result = run_site(env, "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured: DEBUG is off but EXPORT_PSEUDONYM_KEY is unset" in result.stderr
    assert "traced back to user ids" in result.stderr


def test_with_debug_on_the_development_keys_are_accepted():
    result = run_site({"DEBUG": "true", "VAR_DIR": "/tmp/rlhf-settings-test-var"}, "check")
    assert result.returncode == 0, result.stderr
