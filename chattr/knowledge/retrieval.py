"""Context for a turn: the embedder and the knowledge store, loaded in the background.

Loading MiniLM and indexing the characters' knowledge takes seconds on a first start (a restart
embeds nothing: the index is on disk, tagged with its documents' hash; the shipped characters'
vectors are computed ahead, prebuilt.py); the page must open before that, so loading runs in a
thread. Characters are indexed one by one, those a turn waits for first; a turn waits for the
model as for the chat model, then for its own character's knowledge a bounded while, then answers
without it and says so (the page shows the status meanwhile).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chattr.characters.character_set import CharacterSet
from chattr.knowledge.prebuilt import read_vectors
from chattr.knowledge.store import Hit, RememberedTurn, content_hash

if TYPE_CHECKING:
    from chattr.knowledge.embeddings import Embedder
    from chattr.knowledge.store import KnowledgeStore

log = logging.getLogger(__name__)


# A turn waits this long at most for the embedder to load (about a second; tens on a loaded
# machine): the same kind of wait as for the chat model, built beside it at start.
MODEL_WAIT_S = 30.0


class RetrievalUnavailable(RuntimeError):
    """Knowledge could not be loaded (or not in time); the turn goes on without it."""


@dataclass(frozen=True)
class Context:
    """What retrieval found for one message."""

    knowledge: list[Hit] = field(default_factory=list)
    recalled: list[Hit] = field(default_factory=list)
    vector: list[float] | None = None


StoreFactory = Callable[["Embedder"], "KnowledgeStore"]


class Retriever:
    """Embeds messages and searches the character's knowledge and older turns."""

    def __init__(
        self,
        open_store: StoreFactory,
        characters: CharacterSet,
        *,
        knowledge_hits: int = 4,
        memory_hits: int = 3,
        load_embedder: Callable[[], Embedder] | None = None,
    ) -> None:
        self._open_store = open_store
        self._characters = characters
        self._knowledge_hits = knowledge_hits
        self._memory_hits = memory_hits
        self._load_embedder = load_embedder
        self._ready = threading.Event()
        # Set once the embedder is loaded and what needs no embedding is indexed.
        self._searchable = threading.Event()
        # Characters whose knowledge is indexed (or failed to be), and those turns wait for:
        # the loader takes the waited-for ones first.
        self._queue_lock = threading.Lock()
        self._indexed: dict[str, threading.Event] = {}
        self._wanted: list[str] = []
        self._embedder: Embedder | None = None
        self._store: KnowledgeStore | None = None
        self.status = "not started"
        self.error: str | None = None

    def start(self) -> None:
        """Load the embedder and index the characters' knowledge in a background thread (once)."""
        if self.status != "not started":
            return
        self.status = "loading the knowledge model…"
        threading.Thread(target=self._load, name="chattr-knowledge", daemon=True).start()

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            if self._load_embedder is None:
                from chattr.knowledge.embeddings import load_default_embedder

                self._embedder = load_default_embedder()
            else:
                self._embedder = self._load_embedder()
            self._store = self._open_store(self._embedder)
            # Milliseconds a character: what needs no embedding is searchable before a turn
            # stops waiting for the model (`wait_for`).
            for cheap in list(self._characters.characters):
                if self.index_character(cheap, embed=False) is not None:
                    self._indexed_event(cheap).set()
            log.info("knowledge searchable %.1f s after start", time.perf_counter() - started)
            self._searchable.set()
            while (character_id := self._next_to_index()) is not None:
                try:
                    self.index_character(character_id)
                finally:
                    self._indexed_event(character_id).set()
            self.status = f"ready ({time.perf_counter() - started:.1f} s to load)"
            log.info("knowledge %s", self.status)
        except Exception as exc:  # any failure here must show in the page, not kill the app
            self.error = f"{type(exc).__name__}: {exc}"
            self.status = f"unavailable: {self.error}"
            log.exception("knowledge failed to load")
        finally:
            self._ready.set()
            self._searchable.set()
            with self._queue_lock:  # no turn waits on a character the loader will not reach
                for event in self._indexed.values():
                    event.set()

    def _indexed_event(self, character_id: str) -> threading.Event:
        with self._queue_lock:
            event = self._indexed.setdefault(character_id, threading.Event())
            if self._ready.is_set():  # the loader is done: it sets no more events
                event.set()
            return event

    def _next_to_index(self) -> str | None:
        """The next character to index: one a turn waits for, else the next in the set."""
        with self._queue_lock:
            done = {cid for cid, event in self._indexed.items() if event.is_set()}
            known = self._characters.characters
            pending = [cid for cid in self._wanted if cid in known and cid not in done]
            pending += [cid for cid in list(known) if cid not in done]
            return pending[0] if pending else None

    def index_character(self, character_id: str, *, embed: bool = True) -> int | None:
        """(Re-)index one character's knowledge; a no-op when its files did not change.

        The chunks indexed; None, with `embed=False`, when that would take embedding them.
        """
        if self._store is None or self._embedder is None:
            return 0
        character = self._characters.get(character_id)
        documents = character.knowledge_documents()
        if self._store.indexed_hash(character.id) == content_hash(documents):
            return 0
        vectors = read_vectors(character.folder, documents, self._embedder)
        if vectors is None and not embed:
            return None
        self.status = f"indexing {character.name}'s knowledge…"
        count = self._store.sync_character(character.id, documents, vectors=vectors)
        if count:
            log.info("indexed %d knowledge chunks for %s", count, character.id)
        return count

    @property
    def loading(self) -> bool:
        """Still loading (not yet ready, nor failed)."""
        return not self._ready.is_set()

    @property
    def embedder(self) -> Embedder | None:
        """The loaded embedder (others use it too: the emotion classifier); None till then."""
        return self._embedder if self._searchable.is_set() else None

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self.error is None

    def wait(self, timeout: float) -> None:
        """Block until loaded; raise RetrievalUnavailable when it failed or took too long."""
        if not self._ready.wait(timeout):
            raise RetrievalUnavailable(f"still loading ({self.status})")
        if self.error is not None:
            raise RetrievalUnavailable(self.error)

    def wait_for(self, character_id: str, timeout: float) -> None:
        """Block until this character's knowledge is searchable (it is indexed next if not yet);
        raise RetrievalUnavailable when loading failed or took too long.

        Loading the model (and indexing what needs no embedding) is waited for up to
        MODEL_WAIT_S, as a turn waits for the chat model; embedding, `timeout` at most.
        """
        if not self._ready.is_set():
            with self._queue_lock:
                if character_id not in self._wanted:
                    self._wanted.append(character_id)
            self._searchable.wait(MODEL_WAIT_S)
            if not self._indexed_event(character_id).wait(timeout):
                raise RetrievalUnavailable(f"still loading ({self.status})")
        if self.error is not None:
            raise RetrievalUnavailable(self.error)

    def retrieve(self, character_id: str, session_id: str, message: str) -> Context:
        """Embed the message once; search knowledge and this session's older turns with it."""
        assert self._embedder is not None and self._store is not None
        vector = self._embedder.embed_query(message)
        knowledge = self._store.search_knowledge(character_id, vector, limit=self._knowledge_hits)
        recalled = self._store.recall_turns(
            character_id, session_id, vector, limit=self._memory_hits
        )
        return Context(knowledge=knowledge, recalled=recalled, vector=vector)

    def remember(
        self,
        character_id: str,
        session_id: str,
        user_message: str,
        reply: str,
        vector: list[float] | None,
        *,
        at: float | None = None,
        media: Sequence[str] = (),
    ) -> None:
        """Write a finished turn to long-term memory (`at`: its time in short-term memory)."""
        if self._embedder is None or self._store is None:
            return
        if vector is None:
            vector = self._embedder.embed_query(user_message)
        self._store.remember_turn(
            character_id, session_id, user_message, reply, vector, at=at, media=media
        )

    def forget_session(self, session_id: str) -> None:
        if self._store is not None:
            self._store.forget_session(session_id)

    def forget_turn(self, character_id: str, session_id: str, at: float) -> None:
        """Delete one remembered turn (undo, regenerate)."""
        if self._store is not None:
            self._store.forget_turn(character_id, session_id, at)

    def session_turns(self, session_id: str) -> list[RememberedTurn]:
        """Every remembered turn of a session, oldest first (empty before loading)."""
        return [] if self._store is None else self._store.session_turns(session_id)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
