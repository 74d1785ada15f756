"""The whole stack on localhost: real vocalizr and visualizr processes (CPU engines) + chattr."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chattr.media.local_stack import LocalService, LocalStack


@pytest.fixture(scope="session")
def media_stack(
    characters_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """Both media services, started once for the session the way `chattr` starts them."""
    stack = LocalStack(characters_dir=characters_dir, data_dir=tmp_path_factory.mktemp("media"))
    try:
        assert stack.wait_ready(180), "media services did not start"
        assert not stack.status_lines(), stack.status_lines()
        yield stack
    finally:
        stack.stop()


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
    )
    if not service.wait_healthy(120):
        service.stop()
        raise RuntimeError(f"{name} did not start: {service.status}")
    return service
