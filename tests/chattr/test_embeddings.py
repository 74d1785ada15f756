"""MiniLM embeddings, real: unit vectors of 384 floats whose geometry follows meaning."""

from __future__ import annotations

import math

from chattr.embeddings import Embedder, MiniLMEmbedder, load_default_embedder


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_default_embedder_is_minilm_loaded_once(embedder: MiniLMEmbedder) -> None:
    assert isinstance(embedder, MiniLMEmbedder)
    assert isinstance(embedder, Embedder)
    assert load_default_embedder() is embedder
    assert embedder.dim == 384


def test_query_vector_is_unit_length(embedder: MiniLMEmbedder) -> None:
    vector = embedder.embed_query("Where were you born?")
    assert len(vector) == embedder.dim
    assert math.isclose(math.sqrt(_dot(vector, vector)), 1.0, abs_tol=1e-4)


def test_paraphrase_is_nearer_than_an_unrelated_sentence(embedder: MiniLMEmbedder) -> None:
    query = embedder.embed_query("Which horse did Napoleon ride?")
    related, unrelated = embedder.embed_documents(
        [
            "Napoleon's favourite warhorse was a grey stallion named Marengo.",
            "The photoelectric effect shows that light comes in quanta.",
        ]
    )
    assert _dot(query, related) > _dot(query, unrelated) + 0.2


def test_documents_embed_like_queries_and_keep_order(embedder: MiniLMEmbedder) -> None:
    texts = ["Relativity of simultaneity.", "The Battle of Austerlitz, 1805.", "Violin music."]
    documents = embedder.embed_documents(texts)
    assert len(documents) == 3
    for text, vector in zip(texts, documents, strict=True):
        assert _dot(vector, embedder.embed_query(text)) > 0.999


def test_no_documents_no_vectors(embedder: MiniLMEmbedder) -> None:
    assert embedder.embed_documents([]) == []
