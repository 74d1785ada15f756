"""In-process clients of a service app: its real routes, some dependencies swapped, no server."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from fastapi import FastAPI
from fastapi.testclient import TestClient


def answering(value: object) -> Callable[[], object]:
    """A dependency that takes nothing (FastAPI reads parameters as request fields) and gives
    `value`."""
    return lambda: value


@contextmanager
def overridden(
    app: FastAPI, overrides: Mapping[Callable[..., Any], object]
) -> Iterator[TestClient]:
    """A client of `app` whose dependencies in `overrides` answer with the values given.

    The client is not entered, so the lifespan never runs (no engine loads); a bug is answered
    as the app answers it (a 500), not raised into the test.
    """
    for dependency, value in overrides.items():
        app.dependency_overrides[dependency] = answering(value)
    try:
        yield TestClient(app, raise_server_exceptions=False)
    finally:
        app.dependency_overrides.clear()


class Answer(Protocol):
    """What the tests read of a TestClient's response."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


def assert_refused(answer: Answer, status: int, code: str) -> None:
    """The kit's error answer: `status`, `{error: code, detail}`, Retry-After on a 503."""
    assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
    assert answer.json()["detail"]
    if status == 503:
        assert int(answer.headers["retry-after"]) >= 1


def assert_counted(client: TestClient, service: str, route: str, status: int, code: str) -> None:
    """One such answer in `/metrics`, under the labels both services use."""
    metrics = client.get("/metrics").text
    assert f'{service}_errors_total{{code="{code}"}} 1.0' in metrics
    assert f'{service}_requests_total{{route="{route}",status="{status}"}} 1.0' in metrics
