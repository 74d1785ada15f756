"""The whole stack on localhost: real vocalizr and visualizr processes (CPU engines) + chattr."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from chattr.media.local_stack import LocalService, LocalStack, free_port
from chattr.testing.fake_llm import FakeLLMServer

from ..conftest import REPO

Launch = Callable[..., str]  # environment variables -> the URL of app.py, ready


@pytest.fixture(scope="session")
def media_stack(
    characters_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """Both media services, started once for the session the way `chattr` starts them.

    They are guarded by their random keys, which every chattr of the session is given (its
    environment), so the whole stack runs with keys set.
    """
    stack = LocalStack(characters_dir=characters_dir, data_dir=tmp_path_factory.mktemp("media"))
    saved = {name: os.environ.get(name) for name in KEY_VARIABLES.values()}
    try:
        assert stack.wait_ready(180), "media services did not start"
        assert not stack.status_lines(), stack.status_lines()
        for service in stack.services:
            os.environ[KEY_VARIABLES[service.name]] = service.api_key
        yield stack
    finally:
        stack.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


KEY_VARIABLES = {"vocalizr": "CHATTR_VOCALIZR_API_KEY", "visualizr": "CHATTR_VISUALIZR_API_KEY"}


def auth(service: LocalService) -> dict[str, str]:
    """The header that opens a service's guarded routes."""
    return {"Authorization": f"Bearer {service.api_key}"}


def start_service(name: str, characters_dir: Path, data_dir: Path, **env: str) -> LocalService:
    """One extra service process of our own (to kill, or to configure), healthy on return."""
    prefix = name.upper()
    service = LocalService(
        name,
        {
            f"{prefix}_CHARACTERS_DIR": str(characters_dir),
            f"{prefix}_DATA_DIR": str(data_dir / name),
            **{f"{prefix}_{k.upper()}": v for k, v in env.items()},
        },
        data_dir / "logs",
        api_key=os.environ.get(KEY_VARIABLES[name]),  # the session's key: chattr sends it
    )
    if not service.wait_healthy(120):
        service.stop()
        raise RuntimeError(f"{name} did not start: {service.status}")
    return service


@pytest.fixture
def launch(tmp_path: Path, characters_dir: Path, llm: FakeLLMServer) -> Iterator[Launch]:
    """Start `app.py` as a Space runs it (environment given), ready once its knowledge is."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> str:
        port = free_port()
        environment = {
            **os.environ,
            "CHATTR_PORT": str(port),
            "CHATTR_LLM_BASE_URL": llm.url,
            "CHATTR_DATA_DIR": str(tmp_path / f"space-{port}"),
            "CHATTR_CHARACTERS_DIR": str(characters_dir),
            **env,
        }
        for name in (
            "CHATTR_REDIS_URL",
            "CHATTR_VOCALIZR_URL",
            "CHATTR_VISUALIZR_URL",
            "CHATTR_PUBLIC_URL",
            "SPACE_HOST",
            "SPACE_ID",
            "SYSTEM",
        ):
            if name not in env:
                environment.pop(name, None)
        log = (tmp_path / f"app-{port}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, str(REPO / "app.py")], env=environment, stdout=log, stderr=log
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300  # importing gradio takes minutes on a busy machine
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / f"app-{port}.log").read_text()[-3000:]
            try:
                health = httpx.get(url + "/healthz", timeout=1)
                # Ready once the knowledge is indexed too: these turns check it is used.
                if health.status_code == 200 and not str(
                    health.json().get("knowledge", "")
                ).startswith(("loading", "indexing", "not started")):
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("app.py did not start")

    yield start
    for process in processes:
        process.terminate()
        process.wait(60)
