"""The whole stack on localhost: real vocalizr and visualizr processes (CPU engines) + chattr."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chattr.media.local_stack import LocalService, LocalStack


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
