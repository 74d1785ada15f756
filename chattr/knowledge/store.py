"""The knowledge store's interface, and what its adapters share: ids, hashes, payloads."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from chattr.knowledge.chunking import chunk_markdown
from chattr.knowledge.embeddings import Embedder

logger = logging.getLogger(__name__)

HitKind = Literal["knowledge", "memory"]
Point = tuple[str, list[float], dict[str, Any]]  # id, vector, payload
Conditions = Mapping[str, str]  # payload field -> the keyword it must equal

# Payload fields, indexed in both adapters so filters never scan.
CHARACTER = "character_id"
KIND = "kind"
SESSION = "session_id"
CONTENT_HASH = "content_hash"
# A third kind beside "knowledge" and "memory": one point per character holding the content hash
# of its last synced document set, so a restart knows what is already indexed.
MANIFEST = "manifest"

_ID_NAMESPACE = uuid.UUID("6f1c2a52-6d0e-4c55-9a43-2f3a8f8e1c11")
# Part of every content hash: bump it when chunking or the embedding model changes, so stores
# indexed the old way re-index themselves at the next start.
INDEX_FORMAT = "chunk_markdown(120 words, 20 overlap) + all-MiniLM-L6-v2, v1"


@dataclass(frozen=True)
class Hit:
    """One retrieved passage: a knowledge chunk or an older turn of the conversation."""

    text: str
    source: str
    score: float
    kind: HitKind


@dataclass(frozen=True)
class RememberedTurn:
    """One exchange as long-term memory holds it."""

    character_id: str
    user: str
    assistant: str
    at: float
    media: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A passage ready to index: its text, the document it came from, and its vector."""

    text: str
    source: str
    vector: list[float]


class KnowledgeStore(Protocol):
    """Characters' knowledge and conversations' long-term memory, searched by vector."""

    def indexed_hash(self, character_id: str) -> str | None:
        """The content hash of the character's indexed documents, or None if never synced."""
        ...

    def sync_character(
        self,
        character_id: str,
        documents: Mapping[str, str],
        *,
        vectors: Sequence[Sequence[float]] | None = None,
    ) -> int:
        """Chunk, embed and index a character's documents unless unchanged; chunks indexed.

        `vectors`: the chunks' vectors computed ahead (prebuilt.py), so none are embedded.
        """
        ...

    def search_knowledge(
        self, character_id: str, vector: Sequence[float], limit: int = 4
    ) -> list[Hit]:
        """The character's knowledge chunks nearest to `vector`, best first."""
        ...

    def remember_turn(
        self,
        character_id: str,
        session_id: str,
        user_message: str,
        reply: str,
        vector: Sequence[float],
        *,
        at: float | None = None,
        media: Sequence[str] = (),
    ) -> None:
        """Store one exchange as long-term memory of this session with this character (`at`:
        its time in short-term memory, by which undo finds it)."""
        ...

    def recall_turns(
        self, character_id: str, session_id: str, vector: Sequence[float], limit: int = 3
    ) -> list[Hit]:
        """This session's older turns with this character nearest to `vector`, best first."""
        ...

    def forget_session(self, session_id: str) -> None:
        """Delete every remembered turn of a session."""
        ...

    def forget_turn(self, character_id: str, session_id: str, at: float) -> None:
        """Delete one remembered turn (the one remembered with `at`), for undo."""
        ...

    def session_turns(self, session_id: str) -> list[RememberedTurn]:
        """Every remembered turn of a session, with every character, oldest first."""
        ...

    def close(self) -> None:
        """Flush and release the store."""
        ...


def content_hash(documents: Mapping[str, str]) -> str:
    """A hash of a document set (and of INDEX_FORMAT), changed by any name or text; order-free."""
    digest = hashlib.sha256(INDEX_FORMAT.encode("utf-8"))
    for name in sorted(documents):
        for part in (name, documents[name]):
            data = part.encode("utf-8")
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
    return digest.hexdigest()


def chunk_documents(documents: Mapping[str, str]) -> list[tuple[str, str]]:
    """(source, chunk text) for every chunk of every document, in a stable order."""
    return [
        (source, chunk)
        for source in sorted(documents)
        for chunk in chunk_markdown(documents[source], source=source)
    ]


def embed_documents(
    embedder: Embedder,
    documents: Mapping[str, str],
    vectors: Sequence[Sequence[float]] | None = None,
) -> list[Chunk]:
    """Chunk and embed a document set; `vectors`, one per chunk, spare the embedding."""
    pieces = chunk_documents(documents)
    if vectors is None:
        vectors = embedder.embed_documents([text for _, text in pieces])
    elif len(vectors) != len(pieces):
        raise ValueError(f"{len(vectors)} vectors given for {len(pieces)} chunks")
    return [
        Chunk(text=text, source=source, vector=list(vector))
        for (source, text), vector in zip(pieces, vectors, strict=True)
    ]


def knowledge_point_id(character_id: str, digest: str, index: int) -> str:
    """Deterministic id of a chunk: re-syncing the same content overwrites, never duplicates."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"knowledge/{character_id}/{digest}/{index}"))


def manifest_point_id(character_id: str) -> str:
    """The id of a character's manifest point."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"manifest/{character_id}"))


def memory_point_id(character_id: str, session_id: str, at: float) -> str:
    """The id of a remembered turn, from its conversation and its time (short-term memory keeps
    the same time): undo finds the point again, and writing the turn again overwrites it."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"memory/{session_id}/{character_id}/{at!r}"))


def knowledge_payload(character_id: str, digest: str, chunk: Chunk) -> dict[str, Any]:
    return {
        CHARACTER: character_id,
        KIND: "knowledge",
        CONTENT_HASH: digest,
        "source": chunk.source,
        "text": chunk.text,
    }


def manifest_payload(character_id: str, digest: str, chunks: int) -> dict[str, Any]:
    return {CHARACTER: character_id, KIND: MANIFEST, CONTENT_HASH: digest, "chunks": chunks}


def memory_payload(
    character_id: str,
    session_id: str,
    user_message: str,
    reply: str,
    at: float | None = None,
    media: Sequence[str] = (),
) -> dict[str, Any]:
    now = time.time() if at is None else at
    return {
        CHARACTER: character_id,
        KIND: "memory",
        SESSION: session_id,
        "text": f"User: {user_message}\nCharacter: {reply}",
        "user_message": user_message,
        "reply": reply,
        "created_at": now,
        # Exactly, as text: the engine may read a JSON number back a bit off, and undo and
        # export match a turn in both memories by its time.
        "turn_at": repr(now),
        "media": list(media),
        "source": f"turn at {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(now))} UTC",
    }


def manifest_vector(dim: int) -> list[float]:
    """The manifest's vector: never searched (filtered out by kind), but a point needs one."""
    return [1.0] + [0.0] * (dim - 1)


def hit_from_payload(payload: Mapping[str, Any] | None, score: float) -> Hit:
    payload = payload or {}
    kind: HitKind = "memory" if payload.get(KIND) == "memory" else "knowledge"
    return Hit(
        text=str(payload.get("text", "")),
        source=str(payload.get("source", "")),
        score=float(score),
        kind=kind,
    )


class PointStore(ABC):
    """KnowledgeStore written once over a few vector-database primitives the adapters supply."""

    upsert_batch = 1024  # points per write: bounds one request's size for the server adapter

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.dim = embedder.dim
        # Two syncs of one character at once would each delete the other's fresh chunks.
        self._sync_lock = threading.Lock()

    # -- primitives -----------------------------------------------------------------------

    @abstractmethod
    def _upsert(self, points: Sequence[Point]) -> None: ...

    @abstractmethod
    def _delete(self, must: Conditions, must_not: Conditions | None = None) -> None: ...

    @abstractmethod
    def _payload(self, point_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def _delete_ids(self, point_ids: Sequence[str]) -> None: ...

    @abstractmethod
    def _scroll(self, must: Conditions) -> list[dict[str, Any]]:
        """The payloads of every point matching `must` (in pages, however many)."""

    @abstractmethod
    def _search(
        self, vector: Sequence[float], must: Conditions, limit: int
    ) -> list[tuple[dict[str, Any], float]]: ...

    def optimize(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Let the engine build its indexes after many inserts (Edge: blocking optimize)."""

    @abstractmethod
    def close(self) -> None: ...

    # -- KnowledgeStore -------------------------------------------------------------------

    def indexed_hash(self, character_id: str) -> str | None:
        """The content hash of the character's indexed documents, or None if never synced."""
        manifest = self._payload(manifest_point_id(character_id))
        return None if manifest is None else str(manifest.get(CONTENT_HASH))

    def sync_character(
        self,
        character_id: str,
        documents: Mapping[str, str],
        *,
        vectors: Sequence[Sequence[float]] | None = None,
    ) -> int:
        """Chunk, embed and index a character's documents unless unchanged; chunks indexed.

        `vectors`: the chunks' vectors computed ahead (prebuilt.py), so none are embedded.
        """
        digest = content_hash(documents)
        with self._sync_lock:
            if self.indexed_hash(character_id) == digest:
                return 0
            started = time.perf_counter()
            chunks = embed_documents(self.embedder, documents, vectors)
            self.replace_knowledge(character_id, chunks, digest)
        logger.info(
            "indexed %d knowledge chunks of %r from %d documents in %.2f s (%s)",
            len(chunks),
            character_id,
            len(documents),
            time.perf_counter() - started,
            "vectors computed ahead" if vectors is not None else "embedded",
        )
        return len(chunks)

    def replace_knowledge(
        self, character_id: str, chunks: Sequence[Chunk], digest: str, *, optimize: bool = True
    ) -> None:
        """Index already-embedded chunks as the character's whole knowledge, tagged `digest`.

        `optimize=False` leaves index building to a later `optimize()`, for bulk loads.
        """
        points = [
            (
                knowledge_point_id(character_id, digest, index),
                chunk.vector,
                knowledge_payload(character_id, digest, chunk),
            )
            for index, chunk in enumerate(chunks)
        ]
        for start in range(0, len(points), self.upsert_batch):
            self._upsert(points[start : start + self.upsert_batch])
        # New chunks first, then the old ones go: a search in between sees one set or both,
        # never none. The manifest last: a sync cut short is redone at the next start.
        self._delete(
            must={CHARACTER: character_id, KIND: "knowledge"}, must_not={CONTENT_HASH: digest}
        )
        manifest = manifest_payload(character_id, digest, len(chunks))
        self._upsert([(manifest_point_id(character_id), manifest_vector(self.dim), manifest)])
        if optimize:
            self.optimize()

    def search_knowledge(
        self, character_id: str, vector: Sequence[float], limit: int = 4
    ) -> list[Hit]:
        """The character's knowledge chunks nearest to `vector`, best first."""
        found = self._search(vector, {CHARACTER: character_id, KIND: "knowledge"}, limit)
        return [hit_from_payload(payload, score) for payload, score in found]

    def remember_turn(
        self,
        character_id: str,
        session_id: str,
        user_message: str,
        reply: str,
        vector: Sequence[float],
        *,
        at: float | None = None,
        media: Sequence[str] = (),
    ) -> None:
        """Store one exchange as long-term memory of this session with this character; `at`
        is its time in short-term memory (a turn written again with it replaces itself);
        `media`, the reply's joined audio and video."""
        at = time.time() if at is None else at
        payload = memory_payload(character_id, session_id, user_message, reply, at, media)
        point = memory_point_id(character_id, session_id, at)
        self._upsert([(point, list(vector), payload)])

    def recall_turns(
        self, character_id: str, session_id: str, vector: Sequence[float], limit: int = 3
    ) -> list[Hit]:
        """This session's older turns with this character nearest to `vector`, best first."""
        must = {CHARACTER: character_id, KIND: "memory", SESSION: session_id}
        return [
            hit_from_payload(payload, score) for payload, score in self._search(vector, must, limit)
        ]

    def forget_session(self, session_id: str) -> None:
        """Delete every remembered turn of a session."""
        self._delete(must={KIND: "memory", SESSION: session_id})

    def forget_turn(self, character_id: str, session_id: str, at: float) -> None:
        """Delete one remembered turn (the one remembered with `at`), for undo."""
        self._delete_ids([memory_point_id(character_id, session_id, at)])

    def session_turns(self, session_id: str) -> list[RememberedTurn]:
        """Every remembered turn of a session, with every character, oldest first."""
        turns = [
            RememberedTurn(
                character_id=str(payload.get(CHARACTER, "")),
                user=str(payload.get("user_message", "")),
                assistant=str(payload.get("reply", "")),
                at=float(payload.get("turn_at") or payload.get("created_at") or 0.0),
                media=tuple(str(url) for url in payload.get("media") or ()),
            )
            for payload in self._scroll({KIND: "memory", SESSION: session_id})
        ]
        return sorted(turns, key=lambda turn: turn.at)

    def __enter__(self) -> PointStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
