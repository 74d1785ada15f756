"""In-process clients of a service app: its real routes, some dependencies swapped, no server."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

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
