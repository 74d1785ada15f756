"""Fuzz the API from its own OpenAPI schema: no 5xx, and every error has `error` and `detail`."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from tests.vocalizr.support import Server


@pytest.fixture(scope="module")
def schema(piper_server: Server) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{piper_server.url}/openapi.json")


def test_openapi_lists_the_contract(schema: schemathesis.BaseSchema) -> None:
    paths = set(schema.raw_schema["paths"])
    assert {"/v1/speech", "/v1/voices", "/files/{file_id}", "/healthz", "/metrics"} <= paths


def test_fuzz_every_operation(schema: schemathesis.BaseSchema) -> None:
    failures: list[str] = []
    statuses: list[int] = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"invalid operation in the schema: {result.err()}")
            continue
        operation = result.ok()

        @settings(
            max_examples=15,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case[Any]) -> None:
            response = case.call(timeout=30)
            statuses.append(response.status_code)
            where = f"{case.method} {case.formatted_path} {case.body!r:.120}"
            if response.status_code >= 500:
                failures.append(f"{response.status_code} for {where}")
            elif response.status_code >= 400:
                try:
                    body = response.json()
                except ValueError:
                    failures.append(f"non-JSON {response.status_code} for {where}")
                    return
                if not (isinstance(body, dict) and body.get("error") and body.get("detail")):
                    failures.append(f"error without error/detail for {where}: {body}")

        check()
    assert not failures, "\n".join(failures[:10])
    assert len(statuses) > 30 and 422 in statuses  # it really generated requests, bad ones too
