"""What the whole-stack benches share: the local services with their keys, the fake LLM, a
ChatService with the media fan-out over them, and the quick mode's tiny character set.

Imported by the benches as `bench.stack` (each puts the repository on `sys.path` first).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chattr.media.clients import VisualizrClient, VocalizrClient
from chattr.media.fanout import MediaFanout
from chattr.media.local_stack import LocalStack
from chattr.run.assembly import create_service
from chattr.run.serving import make_fanout
from chattr.settings import Settings
from chattr.testing.fake_llm import FakeLLMServer
from chattr.turn.service import ChatService

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO.parent / "shared" / "assets"
CHARACTER = "napoleon"
STARTUP_TIMEOUT_S = 180.0


class StackFailed(Exception):
    """The services or the knowledge did not come up; the message says which."""


def load() -> str:
    """The machine's load, printed beside every figure: this machine is shared."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def quick_characters(root: Path) -> Path:
    """The benches' character without its knowledge: embedding it takes tens of seconds, which
    a quick run (a check that the bench still runs) should not spend."""
    source = REPO / "characters" / CHARACTER
    target = root / "characters" / CHARACTER
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("knowledge"))
    return target.parent


@dataclass
class BenchStack:
    """A ChatService whose turns go through the fan-out to real local services."""

    settings: Settings
    llm: FakeLLMServer
    local: LocalStack
    service: ChatService
    fanout: MediaFanout
    ready_s: float  # from the start until services and knowledge were ready

    def service_clients(self) -> tuple[VocalizrClient, VisualizrClient]:
        """Clients of their own for the services, with the fan-out's options and the keys."""
        vocalizr, visualizr = self.local.vocalizr, self.local.visualizr
        assert vocalizr is not None and visualizr is not None
        assert self.fanout.vocalizr is not None and self.fanout.visualizr is not None
        return (
            VocalizrClient(vocalizr.url, self.fanout.vocalizr.options, vocalizr.api_key),
            VisualizrClient(visualizr.url, self.fanout.visualizr.options, visualizr.api_key),
        )


@contextmanager
def bench_stack(
    work: Path,
    *,
    first_token_s: float,
    tokens_per_s: float,
    characters_dir: Path = REPO / "characters",
    knowledge_timeout_s: float = STARTUP_TIMEOUT_S,
    **overrides: Any,
) -> Iterator[BenchStack]:
    """Start everything, wait until it is ready, stop it all on the way out.

    The services get this process's VOCALIZR_*/VISUALIZR_* settings and random keys of their
    own (LocalStack's), which the fan-out and `service_clients` send. The caller closes
    `fanout` in its event loop (`await stack.fanout.aclose()`). Raises StackFailed."""
    llm = FakeLLMServer(first_token_s=first_token_s, tokens_per_s=tokens_per_s).start()
    settings = Settings(
        llm_base_url=llm.url,
        characters_dir=characters_dir,
        data_dir=work / "chattr",
        redis_url=None,  # the in-process short-term memory
        **overrides,
    )
    started = time.perf_counter()
    local = LocalStack(
        characters_dir=settings.characters_dir,
        data_dir=work / "services",
        startup_timeout_s=STARTUP_TIMEOUT_S,
    )
    service: ChatService | None = None
    try:
        from chattr.knowledge.embeddings import load_default_embedder

        service = create_service(settings, load_embedder=load_default_embedder)
        if not local.wait_ready(STARTUP_TIMEOUT_S + 10) or local.status_lines():
            raise StackFailed(f"media services did not start: {local.status_lines()}")
        assert local.vocalizr is not None and local.visualizr is not None
        assert service.retriever is not None
        service.retriever.wait(knowledge_timeout_s)
        fanout = make_fanout(
            settings,
            local.vocalizr.url,
            local.visualizr.url,
            vocalizr_key=local.vocalizr.api_key,
            visualizr_key=local.visualizr.api_key,
            first_speech=local.first_speech,
        )
        service.media = fanout
        yield BenchStack(settings, llm, local, service, fanout, time.perf_counter() - started)
    finally:
        if service is not None and service.retriever is not None:
            service.retriever.close()
        local.stop()
        llm.stop()
