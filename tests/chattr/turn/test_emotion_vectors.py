"""The emotion prototypes' vectors computed ahead: used while they match, embedded otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chattr.knowledge.embeddings import MiniLMEmbedder
from chattr.turn.emotion_prototypes import PROTOTYPES
from chattr.turn.emotion_vectors import (
    VECTORS_FILE,
    prototype_texts,
    read_prototype_vectors,
    write_prototype_vectors,
)
from chattr.turn.emotions import EmotionClassifier


def test_the_shipped_vectors_are_the_prototypes_embedded_now(embedder: MiniLMEmbedder) -> None:
    """Edit a prototype and forget to rebuild (`python -m chattr.turn.emotion_vectors`), and
    this fails: a start would then embed them again."""
    shipped = read_prototype_vectors(PROTOTYPES, embedder)
    assert shipped is not None, f"{VECTORS_FILE.name} does not match the prototypes"
    fresh = np.asarray(embedder.embed_documents(prototype_texts(PROTOTYPES)), dtype=np.float32)
    cosines = np.sum(shipped * fresh, axis=1)
    assert shipped.shape == fresh.shape and float(cosines.min()) > 0.999


def test_the_classifier_reads_them_instead_of_embedding(embedder: MiniLMEmbedder) -> None:
    class Counting:
        model_id = embedder.model_id
        embedded = 0

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            Counting.embedded += len(texts)
            return embedder.embed_documents(texts)

        def embed_query(self, text: str) -> list[float]:
            return embedder.embed_query(text)

    classifier = EmotionClassifier(Counting())  # type: ignore[arg-type]
    classifier.prepare()
    assert Counting.embedded == 0
    assert classifier.label("I am so happy to see you again, my friend!") == "joy"


@pytest.mark.parametrize("change", ["prototypes", "model"])
def test_vectors_of_other_prototypes_or_another_model_are_not_used(
    tmp_path: Path, embedder: MiniLMEmbedder, change: str
) -> None:
    path = tmp_path / "vectors.npz"
    small = {"joy": ("What a delight!", "I am thrilled."), "anger": ("This is outrageous!",)}
    write_prototype_vectors(small, embedder, path)
    assert read_prototype_vectors(small, embedder, path) is not None
    if change == "prototypes":
        edited = {**small, "anger": ("This is an outrage!",)}
        assert read_prototype_vectors(edited, embedder, path) is None
    else:

        class Other:
            model_id = "another-model"

        assert read_prototype_vectors(small, Other(), path) is None  # type: ignore[arg-type]


def test_an_unreadable_file_is_ignored(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    path = tmp_path / "vectors.npz"
    path.write_bytes(b"not an npz file")
    assert read_prototype_vectors(PROTOTYPES, embedder, path) is None
