"""Fuzz chattr's own HTTP routes (/healthz, /media/{name}) from its OpenAPI schema: no 5xx,
and every error is JSON that says what went wrong."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from ..conftest import StartApp


@pytest.fixture
def schema(start_app: StartApp) -> tuple[schemathesis.BaseSchema, str]:
    app = start_app(auth="ada:lovelace-1843")  # signed in or not, these routes must hold
    return schemathesis.openapi.from_url(f"{app.url}/openapi.json"), app.url


def test_openapi_lists_chattr_routes(schema: tuple[schemathesis.BaseSchema, str]) -> None:
    assert {"/healthz", "/media/{name}"} <= set(schema[0].raw_schema["paths"])


def test_fuzz_every_operation(schema: tuple[schemathesis.BaseSchema, str]) -> None:
    failures: list[str] = []
    statuses: list[int] = []
    for result in schema[0].get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"invalid operation in the schema: {result.err()}")
            continue
        operation = result.ok()

        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case[Any]) -> None:
            response = case.call(timeout=30)
            statuses.append(response.status_code)
            where = f"{case.method} {case.formatted_path}"
            if response.status_code >= 500:
                failures.append(f"{response.status_code} for {where}")
            elif response.status_code >= 400:
                try:
                    body = response.json()
                except ValueError:
                    failures.append(f"non-JSON {response.status_code} for {where}")
                    return
                if not (isinstance(body, dict) and body.get("detail")):
                    failures.append(f"error without detail for {where}: {body}")
                elif any(p in str(body["detail"]) for p in ("/tmp/", "/work/", "/root/")):
                    failures.append(f"a server path in the error for {where}: {body}")

        check()
    assert not failures, "\n".join(failures[:10])
    assert len(statuses) > 30 and 404 in statuses and 200 in statuses
