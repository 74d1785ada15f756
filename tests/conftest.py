"""Fixtures that start real things: a Redis database, the fake LLM server, the chattr app."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import settings as hypothesis_settings

from chattr.media.local_stack import free_port
from chattr.run.assembly import create_app, create_service
from chattr.run.serving import make_fanout
from chattr.settings import Settings
from chattr.testing.fake_llm import FakeLLMServer
from chattr.testing.threaded_server import ThreadedServer
from chattr.turn.service import ChatService
from tests.object_store import SeaweedS3, start_seaweed

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO.parent / "shared" / "assets"
CHARACTERS = REPO / "characters"
REDIS_URL = "redis://127.0.0.1:6379/13"  # this test suite's own database number
START_REDIS = (
    "start one with `make redis-deps` (installs redis-server if missing and runs it there)"
)


# Fixtures that start a real program: chattr's app, vocalizr or visualizr (in a thread or as a
# process), app.py, the local media stack, `chattr import-card`. A test that uses one, directly or
# through another fixture, is marked slow, so `make test-fast` (-m "not slow and not browser")
# leaves it out; tests that start one themselves carry the mark in their own file.
SLOW_FIXTURES = frozenset(
    {
        "start_app",  # chattr (tests/conftest.py)
        "launch",  # app.py as a Space runs it (tests/e2e)
        "media_stack",  # vocalizr and visualizr processes (tests/e2e)
        "odd_stack",
        "piper_server",  # vocalizr (tests/vocalizr)
        "late_server",  # vocalizr or visualizr started after a character is added
        "xtts_server",
        "server",  # visualizr (tests/visualizr)
        "small_queue_server",
        "musetalk_server",
        "vocalizr",  # the services as processes (tests/security, tests/e2e)
        "visualizr",
        "card_characters",  # `chattr import-card` run once per card (tests/chattr)
        "s3_server",  # SeaweedFS's `weed mini` (tests/object_store.py)
    }
)


# The fuzzers draw the same cases on every run, so a failure is a fact about the code, never about
# the draw; each test's own settings inherit this profile and set their sizes.
hypothesis_settings.register_profile("chatacter", derandomize=True, database=None, deadline=None)
hypothesis_settings.load_profile("chatacter")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_sessionstart(session: pytest.Session) -> None:
    # Many tests read the media by path; without them each would fail with its own traceback.
    if not ASSETS.is_dir():
        pytest.exit(
            f"test assets missing: {ASSETS} (speech and portraits the tests use, next to the "
            "checkout as ../shared/assets)",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A real S3 server on loopback (SeaweedFS, ~210 MB) with the bucket `media`; each test
    uses a prefix of its own."""
    server = start_seaweed(tmp_path_factory.mktemp("seaweed"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def assets() -> Path:
    """Real speech and portraits (../shared/assets), present in CI."""
    return ASSETS


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test database, once Redis answers there; else every test that needs it fails at once
    with one line saying how to start it (the failure is cached for the session)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
        problem = None
    except redis.RedisError as error:
        problem = str(error)
    finally:
        client.close()
    if problem is not None:  # failed outside the except: no chained traceback, one line
        message = f"Redis does not answer at {REDIS_URL} ({problem}); {START_REDIS}"
        pytest.fail(message, pytrace=False)
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own in the test database; its keys are deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
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
    from chattr.knowledge.embeddings import load_default_embedder

    return load_default_embedder()


CURIE_YAML = """\
name: Marie Curie
description: Physicist and chemist, pioneer of radioactivity.
personality: precise, modest, tireless
scenario: A quiet evening in the laboratory in Paris.
greeting: Good evening. Mind the glowing vials.
system_prompt: You are {{char}}. Talk with {{user}} about science.
"""

CURIE_FACT = "Marie Curie kept her notebooks in a lead-lined box numbered 7741."


@pytest.fixture(scope="session")
def characters_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped characters plus a test character whose knowledge holds a unique fact."""
    target = tmp_path_factory.mktemp("chattr") / "characters"
    shutil.copytree(CHARACTERS, target)
    curie = target / "curie"
    (curie / "knowledge").mkdir(parents=True)
    (curie / "character.yaml").write_text(CURIE_YAML)
    (curie / "knowledge" / "habits.md").write_text(
        "# Habits\n\n"
        + CURIE_FACT
        + "\n\n# Prizes\n\nShe won two Nobel Prizes, in 1903 and 1911.\n"
    )
    return target


class RunningApp:
    def __init__(self, server: ThreadedServer, service: ChatService, settings: Settings) -> None:
        self.server = server
        self.service = service
        self.settings = settings
        self.url = server.url

    def client(self) -> Any:
        from gradio_client import Client

        return Client(self.url, verbose=False)


StartApp = Callable[..., RunningApp]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir for the session: knowledge is embedded once, later apps reopen it from disk."""
    return tmp_path_factory.mktemp("chattr-data")


@pytest.fixture
def start_app(
    data_dir: Path, characters_dir: Path, llm: FakeLLMServer, embedder: Any, redis_prefix: str
) -> Iterator[StartApp]:
    """Start chattr with test settings (overridable); stopped after the test."""
    running: list[RunningApp] = []

    def start(
        vocalizr_url: str | None = None, visualizr_url: str | None = None, **overrides: Any
    ) -> RunningApp:
        """chattr on a free port; with media when service URLs are given."""
        port = free_port()
        values: dict[str, Any] = {
            "llm_base_url": llm.url,
            "characters_dir": characters_dir,
            "data_dir": data_dir,
            "redis_url": REDIS_URL,
            "redis_prefix": redis_prefix,
            "port": port,
        }
        values.update(overrides)
        settings = Settings(**values)
        media = None
        if vocalizr_url or visualizr_url:
            media = make_fanout(settings, vocalizr_url, visualizr_url)
        service = create_service(settings, media=media, load_embedder=lambda: embedder)
        assert service.retriever is not None
        service.retriever.wait(120)
        server = ThreadedServer(create_app(settings, service), port=port).start()
        app = RunningApp(server, service, settings)
        running.append(app)
        return app

    yield start
    for app in running:
        app.server.stop()
        if app.service.retriever is not None:
            app.service.retriever.close()
