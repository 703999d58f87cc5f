"""URL converters: an id in a URL is a database id, or the route does not match (a 404).

Django's `<int:...>` matches any run of digits; an id past PostgreSQL's bigint then reaches the
database (a raw function call raises "out of range", a 500). Every id route uses `<id:...>`.
"""
from __future__ import annotations

BIGINT_MAX = 2**63 - 1


class DatabaseIdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > BIGINT_MAX:
            raise ValueError(f"{value} is past the largest database id")  # Django answers 404
        return number

    def to_url(self, value) -> str:
        return str(value)
