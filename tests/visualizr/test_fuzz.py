"""Fuzz the API from its own OpenAPI schema: no 5xx, and errors are `{error, detail}`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings

from visualizr.api import create_app
from visualizr.settings import Settings

_schema_app = create_app(Settings(ui=False, data_dir=Path(tempfile.mkdtemp()) / "schema"))
schema = schemathesis.openapi.from_dict(_schema_app.openapi())


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_never_fails_on_generated_input(case: schemathesis.Case[Any], server: str) -> None:
    response = case.call(base_url=server, timeout=60)
    assert response.status_code < 500, (case.path, case.body, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) >= {"error", "detail"}, body
