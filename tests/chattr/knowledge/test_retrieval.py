"""Knowledge at start-up: loaded behind the page, kept on disk, never a reason a turn waits."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chattr.characters.character_set import load_characters
from chattr.knowledge import open_knowledge_store
from chattr.knowledge.embeddings import Embedder, MiniLMEmbedder
from chattr.knowledge.retrieval import Retriever
from chattr.memory import open_memory
from chattr.turn.service import RETRIEVAL_WAIT_S, ChatService

from ...conftest import CURIE_FACT


class CountingEmbedder:
    """The real embedder, counting the passages it is asked to embed."""

    def __init__(self, inner: Embedder, gate: threading.Event | None = None) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.documents = 0
        self.gate = gate

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if self.gate is not None:
            self.gate.wait(60)
        self.documents += len(texts)
        return self.inner.embed_documents(texts)


def retriever_over(characters_dir: Path, data_dir: Path, embedder: Embedder) -> Retriever:
    def open_store(e: Embedder) -> Any:
        return open_knowledge_store(data_dir=data_dir, qdrant_url=None, embedder=e)

    return Retriever(open_store, load_characters(characters_dir), load_embedder=lambda: embedder)


def test_a_restart_on_unchanged_knowledge_embeds_nothing(
    tmp_path: Path, characters_dir: Path, embedder: MiniLMEmbedder
) -> None:
    characters_dir = Path(shutil.copytree(characters_dir, tmp_path / "characters"))
    first = CountingEmbedder(embedder)
    retriever = retriever_over(characters_dir, tmp_path, first)
    retriever.start()
    retriever.wait(300)
    assert first.documents >= 50  # every character's knowledge, embedded once
    retriever.close()

    again = CountingEmbedder(embedder)
    restarted = retriever_over(characters_dir, tmp_path, again)
    restarted.start()
    restarted.wait(300)
    try:
        assert again.documents == 0, "a restart re-embedded unchanged knowledge"
        hits = restarted.retrieve("curie", "s1", "What box did she keep her notebooks in?")
        assert CURIE_FACT in hits.knowledge[0].text  # the index on disk still answers

        # A changed file is re-embedded at the next start, and only that character's.
        habits = characters_dir / "curie" / "knowledge" / "habits.md"
        habits.write_text(habits.read_text() + "\n\nShe walked to the lab every morning.\n")
        restarted.close()
        third = CountingEmbedder(embedder)
        changed = retriever_over(characters_dir, tmp_path, third)
        changed.start()
        changed.wait(300)
        changed.close()
        assert 0 < third.documents < first.documents
    finally:
        restarted.close()


def test_a_turn_does_not_wait_for_knowledge_still_loading(
    tmp_path: Path, characters_dir: Path, embedder: MiniLMEmbedder, llm: Any
) -> None:
    """Indexing held back: the turn answers within about a second, and says why it knows less."""
    from chattr.llm import make_chat_model
    from chattr.settings import Settings

    gate = threading.Event()
    retriever = retriever_over(characters_dir, tmp_path, CountingEmbedder(embedder, gate))
    settings = Settings(llm_base_url=llm.url)
    service = ChatService(
        characters=load_characters(characters_dir),
        memory=open_memory(None, max_turns=8, ttl_s=60, prefix="t"),
        retriever=retriever,
        llm=make_chat_model(settings),
    )
    retriever.start()

    async def one_turn() -> Any:
        last = None
        async for state in service.run("Hello there!", "curie", "s1", media=False):
            last = state
        return last

    try:
        started = time.perf_counter()
        state = asyncio.run(one_turn())
        seconds = time.perf_counter() - started
        assert state is not None and state.done and state.text
        assert seconds < RETRIEVAL_WAIT_S + 5, f"the turn waited {seconds:.1f} s"
        knowledge = [e for e in state.errors if e.service == "knowledge"]
        assert knowledge and knowledge[0].detail.startswith("still loading"), state.errors
        assert retriever.loading  # it really was still loading
    finally:
        gate.set()
        retriever.wait(300)
        retriever.close()
