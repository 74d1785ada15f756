"""Cut a streamed reply into sentences for speech, as the tokens arrive.

A sentence is complete once the text after its end mark shows that a new one starts, so nothing is
cut inside "Dr. Watson", "3.14", "e.g. this" or "Wait... what". Very short fragments are
merged with what follows (a lone "Yes." makes a poor clip); very long ones are split at a comma,
or a space.
"""

from __future__ import annotations

import re

ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof st sr jr gen col lt capt cmdr sgt maj adm gov rev hon mt ft vs etc
    e.g i.e cf al approx dept est fig inc ltd co corp no nos vol vols pp ed eds jan feb mar apr
    jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun a.m p.m u.s u.k""".split()
)

# End mark(s), then closing quotes or brackets, then whitespace, then the next sentence's start.
_BOUNDARY = re.compile(r"""([.!?…]+)(["'”’)\]]*)(\s+)(?=["'“‘(\[]?[A-Z0-9À-ÖØ-Þ])""")
_SOFT_BREAK = re.compile(r"[,;:—–]\s+|\s-\s")


def _is_abbreviation(text_before_mark: str) -> bool:
    """True when the word before a period is an abbreviation or an initial (J. Smith)."""
    word = text_before_mark.rsplit(None, 1)[-1] if text_before_mark.strip() else ""
    word = word.lstrip("\"'“‘([").lower()
    if not word:
        return False
    if len(word) == 1 and word.isalpha():
        return True
    return word in ABBREVIATIONS


def split_long(sentence: str, max_chars: int) -> list[str]:
    """Split a sentence longer than max_chars at the last soft break (or space) before the limit."""
    pieces: list[str] = []
    rest = sentence.strip()
    while len(rest) > max_chars:
        window = rest[:max_chars]
        cut = max((m.end() for m in _SOFT_BREAK.finditer(window)), default=0)
        if cut < max_chars // 3:
            cut = window.rfind(" ") + 1
        if cut <= 0:
            cut = max_chars
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        pieces.append(rest)
    return pieces


class SentenceSplitter:
    """Feed text deltas; get back the sentences that are complete so far."""

    def __init__(self, *, min_chars: int = 16, max_chars: int = 240) -> None:
        self._buffer = ""
        self._pending = ""  # a short fragment waiting to be merged with the next sentence
        self._min_chars = min_chars
        self._max_chars = max_chars

    def feed(self, delta: str) -> list[str]:
        """Add streamed text; return the sentences it completed, in order."""
        self._buffer += delta
        out: list[str] = []
        start = 0
        for match in _BOUNDARY.finditer(self._buffer):
            mark = match.group(1)
            if mark == "." and _is_abbreviation(self._buffer[start : match.start()]):
                continue
            out.extend(self._emit(self._buffer[start : match.end(2)]))
            start = match.end()
        self._buffer = self._buffer[start:]
        # Without an end mark in sight, a run-on must still reach speech in bounded time.
        if len(self._buffer) > 2 * self._max_chars:
            head, _, tail = self._buffer[: self._max_chars].rpartition(" ")
            if head:
                out.extend(self._emit(head))
                self._buffer = tail + self._buffer[self._max_chars :]
        return out

    def flush(self) -> list[str]:
        """The stream ended: return whatever is left."""
        rest = (self._pending + " " + self._buffer).strip()
        self._pending = self._buffer = ""
        return split_long(rest, self._max_chars) if rest else []

    def _emit(self, sentence: str) -> list[str]:
        text = (self._pending + " " + sentence).strip() if self._pending else sentence.strip()
        if not text:
            return []
        if len(text) < self._min_chars:
            self._pending = text
            return []
        self._pending = ""
        return split_long(text, self._max_chars)


def split_sentences(text: str, *, min_chars: int = 16, max_chars: int = 240) -> list[str]:
    """Split a whole text the same way the streaming splitter would."""
    splitter = SentenceSplitter(min_chars=min_chars, max_chars=max_chars)
    return splitter.feed(text) + splitter.flush()
