"""KnowledgeStore on Qdrant Edge: the Qdrant engine in-process (HNSW), on disk, no server."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

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


def _filter(must: Conditions, must_not: Conditions | None = None) -> qe.Filter:
    def conditions(fields: Conditions) -> list[Any]:
        return [qe.FieldCondition(key=k, match=qe.MatchValue(v)) for k, v in fields.items()]

    return qe.Filter(must=conditions(must), must_not=conditions(must_not) if must_not else None)


class EdgeKnowledgeStore(PointStore):
    """One Edge shard in `path` holding every character's knowledge and every session's memory."""

    def __init__(self, path: Path, embedder: Embedder) -> None:
        super().__init__(embedder)
        self.path = path
        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=self.dim, distance=qe.Distance.Cosine)
        )
        # The shard's thread-safety is not documented (beta); Gradio calls from worker
        # threads, and every call here is sub-millisecond to a few seconds, so take turns.
        self._lock = threading.RLock()
        if path.is_dir() and any(path.iterdir()):
            try:
                self._shard = qe.EdgeShard.load(str(path), config)
            except Exception as error:
                raise RuntimeError(
                    f"cannot open the Qdrant Edge shard in {path} for {self.dim}-d vectors "
                    f"({error}); move that folder away to rebuild the index"
                ) from error
        else:
            path.mkdir(parents=True, exist_ok=True)
            self._shard = qe.EdgeShard.create(str(path), config)
        self._ensure_payload_indexes()
        self._closed = False
        logger.info("Qdrant Edge store in %s: %d points", path, self.points_count())

    def _ensure_payload_indexes(self) -> None:
        existing = self._shard.info().payload_schema
        # is_tenant: Qdrant lays points out by character, so a character's search reads
        # its own points; kind/session/hash filters are exact keyword matches.
        wanted: dict[str, Any] = {
            CHARACTER: qe.KeywordIndexParams(is_tenant=True),
            KIND: qe.PayloadSchemaType.Keyword,
            SESSION: qe.PayloadSchemaType.Keyword,
            CONTENT_HASH: qe.PayloadSchemaType.Keyword,
        }
        for field, schema in wanted.items():
            if field not in existing:
                self._shard.update(qe.UpdateOperation.create_field_index(field, schema))

    def points_count(self) -> int:
        """Points in the shard: chunks, remembered turns and one manifest per character."""
        with self._lock:
            return int(self._shard.info().points_count)

    def _upsert(self, points: Sequence[Point]) -> None:
        batch = [qe.Point(point_id, vector, payload) for point_id, vector, payload in points]
        with self._lock:
            self._shard.update(qe.UpdateOperation.upsert_points(batch))

    def _delete(self, must: Conditions, must_not: Conditions | None = None) -> None:
        with self._lock:
            self._shard.update(qe.UpdateOperation.delete_points_by_filter(_filter(must, must_not)))

    def _payload(self, point_id: str) -> dict[str, Any] | None:
        with self._lock:
            records = self._shard.retrieve([point_id], with_payload=True, with_vector=False)
        return dict(records[0].payload or {}) if records else None

    def _delete_ids(self, point_ids: Sequence[str]) -> None:
        with self._lock:
            self._shard.update(qe.UpdateOperation.delete_points(list(point_ids)))

    def _scroll(self, must: Conditions) -> list[dict[str, Any]]:
        payloads: list[dict[str, Any]] = []
        offset: Any = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=256, filter=_filter(must), with_payload=True, with_vector=False
            )
            with self._lock:
                records, offset = self._shard.scroll(request)
            payloads.extend(dict(record.payload or {}) for record in records)
            if offset is None:
                return payloads

    def _search(
        self, vector: Sequence[float], must: Conditions, limit: int
    ) -> list[tuple[dict[str, Any], float]]:
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(list(vector)),
            filter=_filter(must),
            with_payload=True,
            with_vector=False,
        )
        with self._lock:
            found = self._shard.query(request)
        return [(dict(point.payload or {}), point.score) for point in found]

    def optimize(self) -> None:
        """Build HNSW indexes over freshly written points (done after every sync), then flush."""
        # Edge optimizes only when asked: without this, big inserts stay in plain
        # (brute-force) segments and searches stay linear.
        with self._lock:
            self._shard.optimize()
            self._shard.flush()

    def close(self) -> None:
        """Flush to disk and release the shard; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._shard.flush()
            self._shard.close()
