"""Both services' probes, in-process: live at once, ready once the engine is loaded, open without
the bearer key; `/healthz` answers as `/readyz`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from chatacter_common.service import Health, get_health
from tests.in_process import overridden
from visualizr.api import create_app as create_visualizr
from visualizr.settings import Settings as VisualizrSettings
from vocalizr.api import create_app as create_vocalizr
from vocalizr.settings import Settings as VocalizrSettings

KEY = SecretStr("probe-test-key")


def vocalizr(folder: Path) -> FastAPI:
    return create_vocalizr(
        VocalizrSettings(
            data_dir=folder,
            characters_dir=folder / "none",
            stt_engine="none",
            ui=False,
            api_key=KEY,
        )
    )


def visualizr(folder: Path) -> FastAPI:
    return create_visualizr(
        VisualizrSettings(data_dir=folder, characters_dir=folder / "none", ui=False, api_key=KEY)
    )


def loaded() -> Health:
    health = Health()
    assert health.load(lambda: ("fake", "cpu"), "the fake failed to load")
    return health


def no_weights() -> tuple[str, str]:
    raise OSError("no weights")


def failed() -> Health:
    health = Health()
    assert not health.load(no_weights, "the engine failed to load")
    return health


@pytest.mark.parametrize("make", [vocalizr, visualizr])
def test_live_at_once_ready_only_once_loaded(
    make: Callable[[Path], FastAPI], tmp_path: Path
) -> None:
    app = make(tmp_path)
    # Not entered: no lifespan, so the engine never loads and the service stays "loading".
    client = TestClient(app)
    live, ready, health = (client.get(path) for path in ("/livez", "/readyz", "/healthz"))
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (503, {"status": "loading"})
    assert int(ready.headers["retry-after"]) >= 1
    assert (health.status_code, health.json()) == (ready.status_code, ready.json())
    assert client.get("/metrics").status_code == 401  # the key guards all but the probes

    with overridden(app, {get_health: loaded()}) as ready_client:
        ready = ready_client.get("/readyz")
        assert (ready.status_code, ready.json()) == (
            200,
            {"status": "ok", "engine": "fake", "device": "cpu"},
        )
        assert ready_client.get("/healthz").json() == ready.json()

    with overridden(app, {get_health: failed()}) as broken_client:
        ready = broken_client.get("/readyz")
        assert (ready.status_code, ready.json()["error"]) == (503, "engine_unavailable")
        assert broken_client.get("/livez").status_code == 200  # it serves, and says why not
