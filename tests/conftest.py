"""Fixtures that start real things: a Redis database, the fake LLM server, the chattr app."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from chattr.fake_llm import FakeLLMServer

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO.parent / "shared" / "assets"
CHARACTERS = REPO / "characters"
REDIS_URL = "redis://127.0.0.1:6379/13"  # this test suite's own database number


@pytest.fixture(scope="session")
def assets() -> Path:
    """Real speech and portraits (../shared/assets), present in CI."""
    assert ASSETS.is_dir(), f"test assets missing: {ASSETS}"
    return ASSETS


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own in the test database; its keys are deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer().start()
    yield server
    server.stop()


@pytest.fixture
def llm(fake_llm: FakeLLMServer) -> FakeLLMServer:
    """The fake LLM with a clean record for this test."""
    fake_llm.clear()
    return fake_llm


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    """Real MiniLM embeddings, loaded once per test session (takes seconds)."""
    from chattr.embeddings import load_default_embedder

    return load_default_embedder()
