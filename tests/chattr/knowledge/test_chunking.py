"""chunk_markdown: headings travel with their text, tiny paragraphs merge, huge ones split."""

from __future__ import annotations

import itertools

import pytest

from chattr.knowledge.chunking import chunk_markdown

WORDS = [f"word{i}" for i in range(500)]


def test_heading_path_starts_each_chunk() -> None:
    text = "# Napoleon\n\nBorn in Ajaccio.\n\n## Exile\n\nSent to Elba in 1814.\n"
    chunks = chunk_markdown(text, source="bio.md")
    assert chunks == ["Napoleon\nBorn in Ajaccio.", "Napoleon > Exile\nSent to Elba in 1814."]


def test_sibling_heading_replaces_the_previous_one() -> None:
    text = "# A\n## B\nfirst\n## C\nsecond\n# D\nthird"
    assert chunk_markdown(text, source="x.md") == ["A > B\nfirst", "A > C\nsecond", "D\nthird"]


def test_text_without_heading_is_labelled_with_its_source() -> None:
    assert chunk_markdown("Just a fact.", source="knowledge/facts.md") == [
        "knowledge/facts.md\nJust a fact."
    ]


def test_tiny_paragraphs_merge_into_one_chunk() -> None:
    paragraphs = [f"Fact number {i} is short." for i in range(6)]
    chunks = chunk_markdown("# Facts\n\n" + "\n\n".join(paragraphs), source="f.md")
    assert len(chunks) == 1
    assert all(p in chunks[0] for p in paragraphs)


def test_paragraphs_do_not_merge_past_the_limit() -> None:
    paragraph = " ".join(WORDS[:70])
    chunks = chunk_markdown(f"# H\n\n{paragraph}\n\n{paragraph}", source="f.md", max_words=100)
    assert len(chunks) == 2


def test_huge_paragraph_is_split_with_overlap_and_loses_no_word() -> None:
    chunks = chunk_markdown("# Long\n\n" + " ".join(WORDS), source="f.md", max_words=120)
    bodies = [chunk.split("\n", 1)[1].split() for chunk in chunks]
    assert len(chunks) > 1
    assert all(chunk.startswith("Long\n") for chunk in chunks)
    assert all(len(body) <= 120 for body in bodies)
    assert {w for body in bodies for w in body} == set(WORDS)
    for before, after in itertools.pairwise(bodies):
        assert before[-20:] == after[:20]


def test_hash_lines_inside_code_fences_are_not_headings() -> None:
    text = "# Code\n\n```\n# not a heading\n```\n"
    chunks = chunk_markdown(text, source="c.md")
    assert len(chunks) == 1
    assert chunks[0].startswith("Code\n")
    assert "# not a heading" in chunks[0]


def test_empty_text_gives_no_chunks() -> None:
    assert chunk_markdown("", source="e.md") == []
    assert chunk_markdown("# Only a heading\n\n   \n", source="e.md") == []


@pytest.mark.parametrize(("max_words", "overlap"), [(0, 0), (10, 10), (10, -1)])
def test_bad_sizes_are_refused(max_words: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="max_words"):
        chunk_markdown("text", source="x.md", max_words=max_words, overlap_words=overlap)
