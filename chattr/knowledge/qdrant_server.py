"""KnowledgeStore on a Qdrant server or cluster through qdrant-client (also its local mode)."""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from chattr.knowledge.embeddings import Embedder
from chattr.knowledge.store import (
    CHARACTER,
    CONTENT_HASH,
    KIND,
    SESSION,
    Conditions,
    Point,
    PointStore,
)

logger = logging.getLogger(__name__)

DEFAULT_COLLECTION = "chattr"


def _filter(must: Conditions, must_not: Conditions | None = None) -> qm.Filter:
    def conditions(fields: Conditions) -> list[qm.Condition]:
        return [qm.FieldCondition(key=k, match=qm.MatchValue(value=v)) for k, v in fields.items()]

    return qm.Filter(must=conditions(must), must_not=conditions(must_not) if must_not else None)


class ServerKnowledgeStore(PointStore):
    """One collection holding every character's knowledge and every session's memory."""

    def __init__(
        self,
        client: QdrantClient,
        embedder: Embedder,
        *,
        collection: str = DEFAULT_COLLECTION,
        local: bool = False,
    ) -> None:
        super().__init__(embedder)
        self.client = client
        self.collection = collection
        # The HTTP client is thread-safe; local mode is plain Python over dicts (and SQLite
        # when on disk), so Gradio's worker threads take turns there.
        self._local_lock: threading.Lock | None = threading.Lock() if local else None
        self._ensure_collection()

    @classmethod
    def connect(
        cls, url: str, embedder: Embedder, *, api_key: str | None = None, **options: Any
    ) -> ServerKnowledgeStore:
        """A store on the Qdrant server at `url`."""
        return cls(QdrantClient(url=url, api_key=api_key), embedder, **options)

    @classmethod
    def local(
        cls, location: str | Path, embedder: Embedder, **options: Any
    ) -> ServerKnowledgeStore:
        """A store in qdrant-client's local mode: ":memory:" or a folder (a linear scan: tests)."""
        if str(location) == ":memory:":
            client = QdrantClient(location=":memory:")
        else:
            client = QdrantClient(path=str(location), force_disable_check_same_thread=True)
        return cls(client, embedder, local=True, **options)

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        if self._local_lock is None:
            yield
        else:
            with self._local_lock:
                yield

    def _ensure_collection(self) -> None:
        with self._turn():
            if self.client.collection_exists(self.collection):
                info = self.client.get_collection(self.collection)
                vectors = info.config.params.vectors
                size = vectors.size if isinstance(vectors, qm.VectorParams) else None
                if size != self.dim:
                    raise RuntimeError(
                        f"Qdrant collection {self.collection!r} holds {size}-d vectors, the "
                        f"embedder makes {self.dim}-d ones; drop the collection to rebuild it"
                    )
                return
            self.client.create_collection(
                self.collection,
                vectors_config=qm.VectorParams(size=self.dim, distance=qm.Distance.COSINE),
            )
            with warnings.catch_warnings():
                # Local mode warns that payload indexes do nothing there; a server needs them.
                warnings.simplefilter("ignore")
                self.client.create_payload_index(
                    self.collection,
                    CHARACTER,
                    qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD, is_tenant=True),
                )
                for field in (KIND, SESSION, CONTENT_HASH):
                    self.client.create_payload_index(
                        self.collection, field, qm.PayloadSchemaType.KEYWORD
                    )
        logger.info("created Qdrant collection %r (%d-d, cosine)", self.collection, self.dim)

    def _upsert(self, points: Sequence[Point]) -> None:
        structs = [
            qm.PointStruct(id=point_id, vector=list(vector), payload=payload)
            for point_id, vector, payload in points
        ]
        with self._turn():
            self.client.upsert(self.collection, points=structs, wait=True)

    def _delete(self, must: Conditions, must_not: Conditions | None = None) -> None:
        selector = qm.FilterSelector(filter=_filter(must, must_not))
        with self._turn():
            self.client.delete(self.collection, points_selector=selector, wait=True)

    def _payload(self, point_id: str) -> dict[str, Any] | None:
        with self._turn():
            records = self.client.retrieve(
                self.collection, ids=[point_id], with_payload=True, with_vectors=False
            )
        return dict(records[0].payload or {}) if records else None

    def _delete_ids(self, point_ids: Sequence[str]) -> None:
        selector = qm.PointIdsList(points=list(point_ids))
        with self._turn():
            self.client.delete(self.collection, points_selector=selector, wait=True)

    def _scroll(self, must: Conditions) -> list[dict[str, Any]]:
        payloads: list[dict[str, Any]] = []
        offset: Any = None
        while True:
            with self._turn():
                records, offset = self.client.scroll(
                    self.collection,
                    scroll_filter=_filter(must),
                    limit=256,
                    offset=offset,
                    with_payload=True,
                    with_vectors=False,
                )
            payloads.extend(dict(record.payload or {}) for record in records)
            if offset is None:
                return payloads

    def _search(
        self, vector: Sequence[float], must: Conditions, limit: int
    ) -> list[tuple[dict[str, Any], float]]:
        with self._turn():
            response = self.client.query_points(
                self.collection,
                query=list(vector),
                query_filter=_filter(must),
                limit=limit,
                with_payload=True,
            )
        return [(dict(point.payload or {}), point.score) for point in response.points]

    def close(self) -> None:
        """Close the client (local mode on disk: release the folder's lock)."""
        with self._turn():
            self.client.close()
