"""The KnowledgeStore contract, on Qdrant Edge (real) and on the qdrant-client adapter (local mode).

Real MiniLM embeddings throughout, so "found" means found by meaning, as in a chat turn.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from chattr.knowledge import PointStore, content_hash, open_knowledge_store
from chattr.knowledge.embeddings import MiniLMEmbedder
from chattr.knowledge.qdrant_edge import EdgeKnowledgeStore
from chattr.knowledge.qdrant_server import ServerKnowledgeStore

ADAPTERS = ["edge", "server"]

NAPOLEON = {
    "knowledge/horses.md": (
        "# Horses\n\nMy favourite warhorse was Marengo, a small grey Arabian stallion named "
        "after my victory in Italy in 1800. He carried me at Austerlitz and at Waterloo."
    ),
    "knowledge/early_life.md": (
        "# Early life\n\nI was born in Ajaccio, Corsica, on 15 August 1769, the fourth child "
        "of Carlo Buonaparte and Letizia Ramolino.\n\n## School\n\nI studied at the military "
        "school of Brienne-le-Château and later at the École Militaire in Paris."
    ),
}
EINSTEIN = {
    "knowledge/music.md": (
        "# Music\n\nI have played the violin since I was six. My violin is named Lina, and "
        "Mozart's sonatas are my favourite pieces to play."
    ),
    "knowledge/physics.md": (
        "# Physics\n\nIn 1905 I published papers on the photoelectric effect, Brownian "
        "motion and special relativity, and the equation E = mc²."
    ),
}

OpenStore = Callable[[], PointStore]


@pytest.fixture(params=ADAPTERS)
def open_store(
    request: pytest.FixtureRequest, tmp_path: Path, embedder: MiniLMEmbedder
) -> Iterator[OpenStore]:
    """Opens the adapter under test on this test's own folder; closes what it opened."""
    opened: list[PointStore] = []
    url = None if request.param == "edge" else f"path:{tmp_path / 'qdrant-local'}"

    def open_() -> PointStore:
        store = open_knowledge_store(data_dir=tmp_path, qdrant_url=url, embedder=embedder)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> PointStore:
    return open_store()


def _texts(hits: Sequence[object]) -> str:
    return "\n".join(getattr(hit, "text", "") for hit in hits)


def test_factory_picks_the_adapter(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    edge = open_knowledge_store(data_dir=tmp_path, qdrant_url=None, embedder=embedder)
    memory = open_knowledge_store(data_dir=tmp_path, qdrant_url=":memory:", embedder=embedder)
    try:
        assert isinstance(edge, EdgeKnowledgeStore)
        assert (tmp_path / "qdrant-edge").is_dir()
        assert isinstance(memory, ServerKnowledgeStore)
    finally:
        edge.close()
        memory.close()


def test_a_fact_is_found_for_its_character_and_never_for_another(
    store: PointStore, embedder: MiniLMEmbedder
) -> None:
    assert store.sync_character("napoleon", NAPOLEON) > 0
    assert store.sync_character("einstein", EINSTEIN) > 0
    question = embedder.embed_query("What was the name of your horse?")

    napoleon_hits = store.search_knowledge("napoleon", question, limit=1)
    assert "Marengo" in napoleon_hits[0].text
    assert napoleon_hits[0].source == "knowledge/horses.md"
    assert napoleon_hits[0].kind == "knowledge"

    einstein_hits = store.search_knowledge("einstein", question, limit=10)
    assert einstein_hits, "einstein has knowledge of his own"
    assert "Marengo" not in _texts(einstein_hits)
    assert {hit.source for hit in einstein_hits} <= set(EINSTEIN)
    assert store.search_knowledge("nobody", question) == []


def test_hits_come_best_first_and_respect_the_limit(
    store: PointStore, embedder: MiniLMEmbedder
) -> None:
    store.sync_character("napoleon", NAPOLEON)
    hits = store.search_knowledge("napoleon", embedder.embed_query("Where were you born?"), 2)
    assert len(hits) == 2
    assert hits[0].score >= hits[1].score
    assert "Ajaccio" in hits[0].text
    assert hits[0].text.startswith("Early life")  # the heading travels with its chunk


def test_resync_of_unchanged_documents_embeds_nothing(store: PointStore) -> None:
    first = store.sync_character("napoleon", NAPOLEON)
    assert first >= len(NAPOLEON)
    assert store.sync_character("napoleon", dict(reversed(list(NAPOLEON.items())))) == 0
    assert store.indexed_hash("napoleon") == content_hash(NAPOLEON)


def test_changed_documents_replace_the_old_chunks(
    store: PointStore, embedder: MiniLMEmbedder
) -> None:
    store.sync_character("napoleon", NAPOLEON)
    store.sync_character("einstein", EINSTEIN)
    renamed = {
        **NAPOLEON,
        "knowledge/horses.md": "# Horses\n\nMy favourite warhorse was Vizir, a white Arabian.",
    }
    assert store.sync_character("napoleon", renamed) > 0

    question = embedder.embed_query("What was the name of your horse?")
    hits = store.search_knowledge("napoleon", question, limit=50)
    assert "Vizir" in hits[0].text
    assert "Marengo" not in _texts(hits)
    # exactly the new set: no stale copies of the unchanged file either
    texts = [hit.text for hit in hits]
    assert len(texts) == len(set(texts))
    # the other character is untouched
    assert store.search_knowledge("einstein", question, limit=50)
    assert store.sync_character("einstein", EINSTEIN) == 0


def test_documents_removed_leave_no_knowledge(store: PointStore, embedder: MiniLMEmbedder) -> None:
    store.sync_character("napoleon", NAPOLEON)
    assert store.sync_character("napoleon", {}) == 0
    assert store.search_knowledge("napoleon", embedder.embed_query("horse"), limit=10) == []
    assert store.sync_character("napoleon", {}) == 0


def _remember(
    store: PointStore, embedder: MiniLMEmbedder, character: str, session: str, user: str, reply: str
) -> None:
    store.remember_turn(character, session, user, reply, embedder.embed_query(f"{user}\n{reply}"))


def test_memory_is_recalled_per_session_and_per_character(
    store: PointStore, embedder: MiniLMEmbedder
) -> None:
    _remember(store, embedder, "napoleon", "s1", "My dog is called Biscuit.", "A fine name.")
    _remember(store, embedder, "napoleon", "s1", "I live in Lyon.", "A city I know well.")
    _remember(store, embedder, "napoleon", "s2", "My cat is called Pepper.", "Charming.")
    _remember(store, embedder, "einstein", "s1", "My parrot is called Kiwi.", "Wonderful.")
    question = embedder.embed_query("What is my pet called?")

    hits = store.recall_turns("napoleon", "s1", question, limit=5)
    assert "Biscuit" in hits[0].text
    assert hits[0].kind == "memory"
    recalled = _texts(hits)
    assert "Lyon" in recalled
    assert "Pepper" not in recalled and "Kiwi" not in recalled
    assert "Pepper" in _texts(store.recall_turns("napoleon", "s2", question))
    assert "Kiwi" in _texts(store.recall_turns("einstein", "s1", question))
    assert store.recall_turns("einstein", "s2", question) == []


def test_memory_never_leaks_into_knowledge(store: PointStore, embedder: MiniLMEmbedder) -> None:
    store.sync_character("napoleon", NAPOLEON)
    _remember(store, embedder, "napoleon", "s1", "My horse is called Thunder.", "Splendid.")
    question = embedder.embed_query("What is the horse called?")
    assert "Thunder" not in _texts(store.search_knowledge("napoleon", question, limit=50))
    assert all(hit.kind == "memory" for hit in store.recall_turns("napoleon", "s1", question, 50))


def test_forget_session_removes_only_that_session(
    store: PointStore, embedder: MiniLMEmbedder
) -> None:
    store.sync_character("napoleon", NAPOLEON)
    _remember(store, embedder, "napoleon", "s1", "My dog is called Biscuit.", "A fine name.")
    _remember(store, embedder, "napoleon", "s2", "My cat is called Pepper.", "Charming.")
    question = embedder.embed_query("What is my pet called?")
    store.forget_session("s1")
    assert store.recall_turns("napoleon", "s1", question) == []
    assert store.recall_turns("napoleon", "s2", question)
    assert store.search_knowledge("napoleon", question)


def test_the_store_reopens_from_disk_with_its_data(
    open_store: OpenStore, embedder: MiniLMEmbedder
) -> None:
    store = open_store()
    store.sync_character("napoleon", NAPOLEON)
    _remember(store, embedder, "napoleon", "s1", "My dog is called Biscuit.", "A fine name.")
    store.close()

    reopened = open_store()
    assert reopened.sync_character("napoleon", NAPOLEON) == 0  # no re-embedding on restart
    horse = embedder.embed_query("What was the name of your horse?")
    assert "Marengo" in reopened.search_knowledge("napoleon", horse, limit=1)[0].text
    pet = embedder.embed_query("What is my pet called?")
    assert "Biscuit" in reopened.recall_turns("napoleon", "s1", pet)[0].text


def test_concurrent_turns_from_worker_threads(store: PointStore, embedder: MiniLMEmbedder) -> None:
    store.sync_character("napoleon", NAPOLEON)
    question = embedder.embed_query("What was the name of your horse?")
    errors: list[BaseException] = []

    def turn(n: int) -> None:
        try:
            for i in range(20):
                assert "Marengo" in store.search_knowledge("napoleon", question, 1)[0].text
                store.remember_turn("napoleon", f"t{n}", f"message {i}", "reply", question)
                assert store.recall_turns("napoleon", f"t{n}", question, 3)
        except BaseException as error:  # surfaced below: a thread's failure is not pytest's
            errors.append(error)

    threads = [threading.Thread(target=turn, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.recall_turns("napoleon", "t0", question, limit=100)) == 20


class _TinyEmbedder:
    """A real Embedder of another width, to open an existing store with the wrong one."""

    dim = 8

    def embed_query(self, text: str) -> list[float]:
        return [1.0] + [0.0] * 7

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_reopening_with_another_embedding_width_says_what_to_do(
    adapter: str, tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    url = None if adapter == "edge" else f"path:{tmp_path / 'qdrant-local'}"
    open_knowledge_store(data_dir=tmp_path, qdrant_url=url, embedder=embedder).close()
    with pytest.raises(RuntimeError, match="384"):
        open_knowledge_store(data_dir=tmp_path, qdrant_url=url, embedder=_TinyEmbedder())
