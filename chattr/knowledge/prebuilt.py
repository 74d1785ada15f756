"""Knowledge vectors computed ahead, kept in the character's folder, so a first start need not
embed the shipped characters' knowledge.

Embedding is most of a first start's indexing: MiniLM takes seconds for a character's few dozen
chunks on a busy core, and a first message waits for its character's knowledge. The file
`knowledge.vectors.npz` beside `knowledge/` holds one vector per chunk, in `chunk_documents`
order, tagged with the documents' `content_hash` and the embedding model: it is used only when
both still match (an edited file, or another model, is embedded at start as before). Rebuild
after editing a character's knowledge (tests/chattr/knowledge/test_prebuilt.py checks they match):

    .venv/bin/python -m chattr.knowledge.prebuilt [CHARACTERS_DIR]
"""

from __future__ import annotations

import argparse
import logging
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from chatacter_common.character_folder import confined_file
from chattr.knowledge.embeddings import Embedder
from chattr.knowledge.store import chunk_documents, content_hash

logger = logging.getLogger(__name__)

VECTORS_FILE = "knowledge.vectors.npz"
# An imported folder may carry a file by this name: read none bigger (a character's knowledge
# is ~100 KB of vectors), and no compressed member, whose size on disk says nothing.
MAX_FILE_BYTES = 16 * 2**20


def read_vectors(
    folder: Path, documents: Mapping[str, str], embedder: Embedder
) -> list[list[float]] | None:
    """The prebuilt vectors of `documents`' chunks for `embedder`, or None when there are none
    or they were made from other documents, by another model, or are unreadable."""
    model = getattr(embedder, "model_id", None)
    path = confined_file(folder, VECTORS_FILE)
    if model is None or path is None or not path.is_file() or not documents:
        return None
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if member.compress_type != zipfile.ZIP_STORED or member.file_size > MAX_FILE_BYTES:
                    raise ValueError(f"{member.filename} is compressed or too big")
        with np.load(path, allow_pickle=False) as saved:
            digest, made_by = str(saved["content_hash"]), str(saved["model"])
            vectors = np.asarray(saved["vectors"], dtype=np.float32)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        logger.warning("ignoring %s: %s", path, error)
        return None
    if digest != content_hash(documents) or made_by != model:
        logger.info("%s is out of date (%s); embedding the knowledge instead", path, made_by)
        return None
    if vectors.shape != (len(chunk_documents(documents)), embedder.dim):
        logger.warning("ignoring %s: vectors of shape %s", path, vectors.shape)
        return None
    return [[float(x) for x in row] for row in vectors.tolist()]


def write_vectors(folder: Path, documents: Mapping[str, str], embedder: Embedder) -> Path | None:
    """Embed `documents`' chunks and save their vectors in `folder`; None when there are none."""
    model = getattr(embedder, "model_id", None)
    if model is None:
        raise ValueError(f"{type(embedder).__name__} names no model_id to tag the vectors with")
    path = folder / VECTORS_FILE
    if not documents:
        path.unlink(missing_ok=True)
        return None
    texts = [text for _, text in chunk_documents(documents)]
    vectors = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
    # Stored, not deflated: read_vectors refuses compressed members.
    np.savez(
        path,
        content_hash=np.array(content_hash(documents)),
        model=np.array(model),
        vectors=vectors,
    )
    return path


def main(argv: Sequence[str] | None = None) -> int:
    from chattr.characters.character_set import load_characters
    from chattr.knowledge.embeddings import load_default_embedder

    parser = argparse.ArgumentParser(description="Compute the characters' knowledge vectors.")
    parser.add_argument("characters_dir", nargs="?", type=Path, default=Path("characters"))
    args = parser.parse_args(argv)
    characters = load_characters(args.characters_dir)
    embedder = load_default_embedder()
    for character in characters.characters.values():
        documents = character.knowledge_documents()
        path = write_vectors(character.folder, documents, embedder)
        chunks = len(chunk_documents(documents))
        print(f"{character.id}: {chunks} chunks -> {path or 'no knowledge, no file'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
