"""Knowledge vectors computed ahead: the shipped files match, and are used only when they fit."""

from __future__ import annotations

import shutil
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chattr.characters.character_set import load_characters
from chattr.knowledge import open_knowledge_store
from chattr.knowledge.embeddings import Embedder, MiniLMEmbedder
from chattr.knowledge.prebuilt import VECTORS_FILE, read_vectors, write_vectors
from chattr.knowledge.retrieval import RetrievalUnavailable, Retriever
from chattr.knowledge.store import chunk_documents

from ...conftest import CHARACTERS, CURIE_FACT

SHIPPED = sorted(path.parent.name for path in CHARACTERS.glob("*/character.yaml"))


class RecordingEmbedder:
    """The real embedder, recording which documents it embeds, optionally held at a gate."""

    def __init__(self, inner: MiniLMEmbedder, *, same_model: bool = True) -> None:
        self.inner = inner
        self.dim = inner.dim
        if same_model:  # else it names no model: vectors computed ahead do not apply
            self.model_id = inner.model_id
        self.embedded: list[str] = []  # each call's first text
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.embedded.append(texts[0] if texts else "")
        self.entered.set()
        assert self.gate.wait(60), "the test never opened the gate"
        return self.inner.embed_documents(texts)


def retriever_over(characters_dir: Path, data_dir: Path, embedder: Embedder) -> Retriever:
    def open_store(e: Embedder) -> Any:
        return open_knowledge_store(data_dir=data_dir, qdrant_url=None, embedder=e)

    return Retriever(open_store, load_characters(characters_dir), load_embedder=lambda: embedder)


@pytest.mark.parametrize("character_id", SHIPPED)
def test_the_shipped_vectors_are_the_embedders_for_the_current_knowledge(
    character_id: str, embedder: MiniLMEmbedder
) -> None:
    """Fails after a knowledge file is edited: rerun `python -m chattr.knowledge.prebuilt`."""
    character = load_characters(CHARACTERS).get(character_id)
    documents = character.knowledge_documents()
    vectors = read_vectors(character.folder, documents, embedder)
    assert vectors is not None, f"{character_id}/{VECTORS_FILE} is missing or out of date"
    fresh = np.asarray(embedder.embed_documents([t for _, t in chunk_documents(documents)]))
    cosines = np.sum(np.asarray(vectors) * fresh, axis=1)
    assert len(vectors) == len(fresh) and cosines.min() > 0.9999, cosines.min()


@pytest.fixture
def napoleon(tmp_path: Path) -> Path:
    return Path(shutil.copytree(CHARACTERS / "napoleon", tmp_path / "napoleon"))


def documents_of(folder: Path) -> dict[str, str]:
    return load_characters(folder.parent).get(folder.name).knowledge_documents()


def test_vectors_of_other_documents_or_another_model_are_not_used(
    napoleon: Path, embedder: MiniLMEmbedder
) -> None:
    documents = documents_of(napoleon)
    assert read_vectors(napoleon, documents, embedder) is not None
    unnamed = RecordingEmbedder(embedder, same_model=False)
    assert read_vectors(napoleon, documents, unnamed) is None
    edited = {**documents, "knowledge/exile.md": documents["knowledge/exile.md"] + "\nOne more."}
    assert read_vectors(napoleon, edited, embedder) is None
    (napoleon / VECTORS_FILE).unlink()
    assert read_vectors(napoleon, documents, embedder) is None


def test_a_compressed_or_broken_vectors_file_is_ignored(
    napoleon: Path, embedder: MiniLMEmbedder
) -> None:
    documents = documents_of(napoleon)
    path = napoleon / VECTORS_FILE
    with np.load(path) as saved:
        arrays = {name: saved[name] for name in saved.files}
    # A deflated member could unpack to far more than the file's size: refused unread.
    np.savez_compressed(path, **arrays)
    with zipfile.ZipFile(path) as archive:
        assert all(m.compress_type == zipfile.ZIP_DEFLATED for m in archive.infolist())
    assert read_vectors(napoleon, documents, embedder) is None
    path.write_bytes(b"not a zip file")
    assert read_vectors(napoleon, documents, embedder) is None
    write_vectors(napoleon, documents, embedder)  # the command's own output reads back
    assert read_vectors(napoleon, documents, embedder) is not None


def test_a_first_start_embeds_only_the_knowledge_without_vectors(
    tmp_path: Path, characters_dir: Path, embedder: MiniLMEmbedder
) -> None:
    recording = RecordingEmbedder(embedder)
    retriever = retriever_over(characters_dir, tmp_path, recording)
    retriever.start()
    retriever.wait(300)
    try:
        # The test character Curie has no vectors file; the shipped ones are not re-embedded.
        assert len(recording.embedded) == 1 and "Curie" in recording.embedded[0]
        hits = retriever.retrieve("napoleon", "s1", "Tell me about the battle of Austerlitz.")
        assert any("Austerlitz" in hit.text for hit in hits.knowledge), hits.knowledge
    finally:
        retriever.close()


def test_the_character_a_turn_waits_for_is_indexed_next(
    tmp_path: Path, characters_dir: Path, embedder: MiniLMEmbedder
) -> None:
    """No vectors apply (the embedder names no model): each character is embedded in turn,
    and the one a turn asks for goes before those not yet begun."""
    characters = load_characters(characters_dir)
    owner = {  # a character's first chunk -> the character
        chunk_documents(c.knowledge_documents())[0][1]: c.id for c in characters.characters.values()
    }
    order = list(characters.characters)
    last = order[-1]
    recording = RecordingEmbedder(embedder, same_model=False)
    recording.gate.clear()
    retriever = retriever_over(characters_dir, tmp_path, recording)
    retriever.start()
    try:
        assert recording.entered.wait(120), "the loader never began embedding"
        with pytest.raises(RetrievalUnavailable, match="still loading"):
            retriever.wait_for(last, 0.01)
        recording.gate.set()
        retriever.wait_for(last, 300)
        retriever.wait(300)
        embedded = [owner[text] for text in recording.embedded]
        assert embedded == [order[0], last, *order[1:-1]]
        hits = retriever.retrieve("curie", "s1", "What box did she keep her notebooks in?")
        assert CURIE_FACT in hits.knowledge[0].text
    finally:
        recording.gate.set()
        retriever.wait(300)
        retriever.close()


def test_a_turns_character_with_vectors_is_searchable_while_others_embed(
    tmp_path: Path, characters_dir: Path, embedder: MiniLMEmbedder
) -> None:
    recording = RecordingEmbedder(embedder)
    recording.gate.clear()  # Curie's embedding held
    retriever = retriever_over(characters_dir, tmp_path, recording)
    retriever.start()
    try:
        retriever.wait_for("napoleon", 300)
        assert retriever.loading
        hits = retriever.retrieve("napoleon", "s1", "What happened at Waterloo?")
        assert any("Waterloo" in hit.text for hit in hits.knowledge), hits.knowledge
    finally:
        recording.gate.set()
        retriever.wait(300)
        retriever.close()
