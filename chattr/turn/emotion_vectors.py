"""The emotion prototypes' vectors computed ahead, shipped beside them, so a start need not embed
them.

Embedding the 114 prototypes takes MiniLM 0.4 s on an idle 2-core machine, and on a cold start it
came just as the first message did, beside the services' own loading: the first turn's prompt
and its first untagged sentence waited for it (bench/startup.py). `emotion_prototypes.vectors.npz`
holds one vector per prototype, in `PROTOTYPES` order, tagged with a hash of the prototypes and
the embedding model: used only while both still match (edited prototypes, or another model, are
embedded as before). Rebuild after editing `emotion_prototypes.py` (a test checks they match):

    .venv/bin/python -m chattr.turn.emotion_vectors
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from chattr.knowledge.embeddings import Embedder

log = logging.getLogger(__name__)

VECTORS_FILE = Path(__file__).with_name("emotion_prototypes.vectors.npz")


def prototype_texts(prototypes: Mapping[str, Sequence[str]]) -> list[str]:
    """Every prototype, label by label: the order of the saved vectors."""
    return [text for label_texts in prototypes.values() for text in label_texts]


def prototypes_hash(prototypes: Mapping[str, Sequence[str]]) -> str:
    """A digest of the labels and their prototypes, in order."""
    canonical = json.dumps([[label, list(texts)] for label, texts in prototypes.items()])
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def read_prototype_vectors(
    prototypes: Mapping[str, Sequence[str]], embedder: Embedder, path: Path = VECTORS_FILE
) -> npt.NDArray[np.float32] | None:
    """The saved vectors of `prototypes` for `embedder`, or None when there are none, or they
    were made from other prototypes, by another model, or are unreadable."""
    model = getattr(embedder, "model_id", None)
    if model is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            digest, made_by = str(saved["prototypes_hash"]), str(saved["model"])
            vectors = np.asarray(saved["vectors"], dtype=np.float32)
    except (OSError, ValueError, KeyError) as error:
        log.warning("ignoring %s: %s", path, error)
        return None
    count = len(prototype_texts(prototypes))
    if digest != prototypes_hash(prototypes) or made_by != model or vectors.shape[0] != count:
        log.info("%s is out of date; embedding the emotion prototypes instead", path.name)
        return None
    return vectors


def write_prototype_vectors(
    prototypes: Mapping[str, Sequence[str]], embedder: Embedder, path: Path = VECTORS_FILE
) -> Path:
    """Embed `prototypes` and save their vectors at `path`."""
    model = getattr(embedder, "model_id", None)
    if model is None:
        raise ValueError(f"{type(embedder).__name__} names no model_id to tag the vectors with")
    vectors = np.asarray(embedder.embed_documents(prototype_texts(prototypes)), dtype=np.float32)
    np.savez(
        path,
        prototypes_hash=np.array(prototypes_hash(prototypes)),
        model=np.array(model),
        vectors=vectors,
    )
    return path


def main() -> int:
    from chattr.knowledge.embeddings import load_default_embedder
    from chattr.turn.emotion_prototypes import PROTOTYPES

    path = write_prototype_vectors(PROTOTYPES, load_default_embedder())
    print(f"{len(prototype_texts(PROTOTYPES))} prototypes -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
