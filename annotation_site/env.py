"""Typed readers for settings that come from the environment.

Each reader returns the embedded default when the variable is unset and fails loudly, naming the
variable, when it is set to something it cannot parse. Every variable read here is listed in
`.env.example` with its default.
"""
from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured


class EnvError(ValueError):
    pass


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise EnvError(f"{name}={raw!r} is not a boolean: use one of 1/0, true/false, yes/no, on/off")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise EnvError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise EnvError(f"{name}={value} must be at least {minimum}")
    return value


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise EnvError(f"{name}={raw!r} is not a number") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [part.strip() for part in raw.split(",") if part.strip()]


def env_secret(name: str, dev_default: str, *, required: bool, why: str) -> str:
    """A secret whose embedded default is for development only: with `required` (DEBUG off) an
    unset, empty or default value refuses to start the site, saying `why` it matters."""
    value = os.environ.get(name, dev_default)
    if required and value in ("", dev_default):
        state = "empty" if not value else "unset (the embedded development value)"
        raise ImproperlyConfigured(
            f"DEBUG is off but {name} is {state}: {why} Set {name} to a long random value, e.g. the output "
            "of python -c 'import secrets; print(secrets.token_urlsafe(50))'."
        )
    return value
