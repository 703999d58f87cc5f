"""Schemathesis over the site's OpenAPI schema, against a running site, counting server errors.

Shared by `tests/security/test_schema_fuzz.py` (a few examples per operation, in CI) and
`bench/security_probe.py` (the long run by hand). Schemathesis 4's Python API: each operation of
the loaded schema gives a Hypothesis strategy of cases, valid (positive) and invalid (negative)
ones; each case is sent over HTTP with the role's token and any 5xx is recorded.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode


@dataclass
class FuzzReport:
    requests: int = 0
    operations: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    seconds_per_operation: dict[str, float] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    out_of_time: bool = False


def openapi_schema() -> dict:
    """The site's schema as drf-spectacular generates it (what /api/schema/ serves)."""
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def fuzz_api(
    *, base_url: str, headers: dict[str, str], max_examples: int, time_budget_s: float, derandomize: bool = True,
    schema: dict | None = None,
) -> FuzzReport:
    """Send up to `max_examples` positive and as many negative cases to every operation; stops
    starting new operations once `time_budget_s` is spent (the report says so). Derandomized runs
    send the same cases every time (CI); the bench draws new ones."""
    loaded = schemathesis.openapi.from_dict(schema or openapi_schema())
    session = requests.Session()
    report = FuzzReport()
    started = time.monotonic()
    for result in loaded.get_all_operations():
        operation = result.ok()
        operation_started = time.monotonic()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if time.monotonic() - started > time_budget_s:
                report.out_of_time = True
                return report

            @hypothesis_settings(
                max_examples=max_examples, deadline=None, database=None, derandomize=derandomize,
                phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def send(case):
                try:
                    response = case.call(base_url=base_url, session=session, headers=headers, timeout=60)
                except requests.RequestException as error:
                    report.server_errors.append(f"{operation.label}: no answer ({error})")
                    return
                report.requests += 1
                report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
                if response.status_code >= 500:
                    report.server_errors.append(
                        f"{operation.label} -> {response.status_code}: {case.as_curl_command(headers=headers)[:600]}"
                        f"\n  {response.text[:300]}"
                    )

            try:
                send()
            except Unsatisfiable:
                pass  # nothing invalid to generate (e.g. a negative case of an operation without inputs)
        report.operations += 1
        report.seconds_per_operation[operation.label] = round(time.monotonic() - operation_started, 2)
    return report
