"""Cut a character's Markdown knowledge into passages small enough to embed and to quote."""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BLANK_LINES = re.compile(r"\n\s*\n")


@dataclass
class _Section:
    """The body paragraphs under one heading path ("Battles > Austerlitz")."""

    heading: str
    paragraphs: list[str]


def _sections(text: str) -> list[_Section]:
    """Split Markdown into sections by heading; each keeps the path of headings above it."""
    sections: list[_Section] = []
    trail: list[tuple[int, str]] = []  # (level, title) of the headings we are under
    body: list[str] = []

    def close_section() -> None:
        paragraphs = [" ".join(p.split()) for p in _BLANK_LINES.split("\n".join(body))]
        paragraphs = [p for p in paragraphs if p]
        if paragraphs:
            sections.append(_Section(" > ".join(title for _, title in trail), paragraphs))
        body.clear()

    in_fence = False
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            body.append(line)
            continue
        close_section()
        level, title = len(match.group(1)), match.group(2).strip()
        trail = [(lvl, t) for lvl, t in trail if lvl < level]
        if title:
            trail.append((level, title))
    close_section()
    return sections


def _split_long(words: list[str], max_words: int, overlap_words: int) -> list[list[str]]:
    """Windows of `max_words` words, each repeating the last `overlap_words` of the one before."""
    if len(words) <= max_words:
        return [words]
    step = max(1, max_words - overlap_words)
    windows = []
    for start in range(0, len(words), step):
        windows.append(words[start : start + max_words])
        if start + max_words >= len(words):
            break
    return windows


def chunk_markdown(
    text: str, *, source: str, max_words: int = 120, overlap_words: int = 20
) -> list[str]:
    """Split Markdown by headings and paragraphs into chunks of at most ~`max_words` words.

    Each chunk starts with its heading path (or `source` when the text has no heading), tiny
    paragraphs are merged with their neighbours, and huge ones are cut with an overlap.
    """
    if max_words < 1 or not 0 <= overlap_words < max_words:
        raise ValueError(
            f"need max_words >= 1 and 0 <= overlap_words < max_words, "
            f"got {max_words} and {overlap_words}"
        )
    chunks: list[str] = []
    for section in _sections(text):
        prefix = section.heading or source
        pieces: list[list[str]] = []
        for paragraph in section.paragraphs:
            pieces.extend(_split_long(paragraph.split(), max_words, overlap_words))
        # Greedy merge: consecutive paragraphs share a chunk while they fit, so a heading
        # with several one-line paragraphs becomes one passage, not a handful of fragments.
        current: list[list[str]] = []
        for piece in pieces:
            if current and sum(map(len, current)) + len(piece) > max_words:
                chunks.append(_with_heading(prefix, current))
                current = []
            current.append(piece)
        if current:
            chunks.append(_with_heading(prefix, current))
    return chunks


def _with_heading(heading: str, paragraphs: list[list[str]]) -> str:
    body = "\n".join(" ".join(words) for words in paragraphs)
    return f"{heading}\n{body}" if heading else body
