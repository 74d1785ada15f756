"""chattr launched for real on a free port: fake LLM, real Redis, Qdrant Edge, MiniLM."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chattr.app import create_app, create_service
from chattr.fake_llm import FakeLLMServer
from chattr.settings import Settings
from chattr.threaded_server import ThreadedServer
from chattr.turn import ChatService

SHIPPED = Path(__file__).resolve().parents[2] / "characters"

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
    shutil.copytree(SHIPPED, target)
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

    def start(**overrides: Any) -> RunningApp:
        values: dict[str, Any] = {
            "llm_base_url": llm.url,
            "characters_dir": characters_dir,
            "data_dir": data_dir,
            "redis_url": "redis://127.0.0.1:6379/13",
            "redis_prefix": redis_prefix,
        }
        values.update(overrides)
        settings = Settings(**values)
        service = create_service(settings, load_embedder=lambda: embedder)
        assert service.retriever is not None
        service.retriever.wait(120)
        server = ThreadedServer(create_app(settings, service)).start()
        app = RunningApp(server, service, settings)
        running.append(app)
        return app

    yield start
    for app in running:
        app.server.stop()
        if app.service.retriever is not None:
            app.service.retriever.close()
