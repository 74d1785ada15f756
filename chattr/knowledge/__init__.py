"""Characters' knowledge and conversations' long-term memory in Qdrant, behind one interface."""

from __future__ import annotations

from pathlib import Path

from chattr.knowledge.embeddings import Embedder
from chattr.knowledge.store import (
    Chunk,
    Hit,
    KnowledgeStore,
    PointStore,
    RememberedTurn,
    content_hash,
)

__all__ = [
    "Chunk",
    "Hit",
    "KnowledgeStore",
    "PointStore",
    "RememberedTurn",
    "content_hash",
    "open_knowledge_store",
]

EDGE_SUBDIR = "qdrant-edge"
LOCAL_PATH_PREFIX = "path:"


def open_knowledge_store(
    *,
    data_dir: Path,
    qdrant_url: str | None,
    embedder: Embedder,
    qdrant_api_key: str | None = None,
) -> PointStore:
    """The store chattr is configured for.

    No URL: Qdrant Edge on disk in `data_dir/qdrant-edge`. A URL: that Qdrant server.
    ":memory:" or "path:FOLDER": qdrant-client's local mode (a linear scan; for tests).
    """
    if qdrant_url is None or not qdrant_url.strip():
        from chattr.knowledge.qdrant_edge import EdgeKnowledgeStore

        return EdgeKnowledgeStore(Path(data_dir) / EDGE_SUBDIR, embedder)

    from chattr.knowledge.qdrant_server import ServerKnowledgeStore

    if qdrant_url == ":memory:":
        return ServerKnowledgeStore.local(":memory:", embedder)
    if qdrant_url.startswith(LOCAL_PATH_PREFIX):
        folder = Path(qdrant_url.removeprefix(LOCAL_PATH_PREFIX)).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        return ServerKnowledgeStore.local(folder, embedder)
    return ServerKnowledgeStore.connect(qdrant_url, embedder, api_key=qdrant_api_key)
