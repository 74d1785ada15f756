"""Cut a streamed reply into sentences for speech, as the tokens arrive, in every language.

A sentence is complete once the text after its end mark shows that a new one starts, so nothing is
cut inside "Dr. Watson", "3.14", "e.g. this" or "Wait... what". In scripts without capital letters
(Arabic, Hindi, Chinese, Japanese, Korean...) any letter may start the next sentence; Chinese and
Japanese 。！？ end a sentence without a space after them, as do Hindi ।, Arabic ؟ and Urdu ۔.

Very short fragments are merged with what follows (a lone "Yes." makes a poor clip); very long
ones are split at a comma (also ，、 and Arabic ،), or a space. Lengths are weighed: one Chinese,
Japanese or Korean character counts as three Latin ones, about what each says aloud, so both
limits mean the same in every language.

With `first_clause`, the reply's first clause (after a comma or the like, a few words in) goes
to speech as soon as it is complete, before the rest of its sentence has arrived.
"""

from __future__ import annotations

import re
import unicodedata

ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof st sr jr gen col lt capt cmdr sgt maj adm gov rev hon mt ft vs etc
    e.g i.e cf al approx dept est fig inc ltd co corp no nos vol vols pp ed eds jan feb mar apr
    jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun a.m p.m u.s u.k""".split()
)

# An emotion tag (`[joy]`) reaches the splitter as one private-use character from here on
# (`chattr/turn/emotions.py`): it starts a sentence, as an opening quote does.
TAG_MARK_BASE = 0xE000
TAG_MARK_COUNT = 64


def is_tag_mark(char: str) -> bool:
    """Whether `char` stands for an emotion tag."""
    return TAG_MARK_BASE <= ord(char) < TAG_MARK_BASE + TAG_MARK_COUNT


_TAG_MARKS = "".join(chr(TAG_MARK_BASE + index) for index in range(TAG_MARK_COUNT))


_CLOSERS = "\"'”’»)\\]」』）"
_OPENERS = "\"'“‘«„([¿¡「『（"
# Marks after which any next sentence starts, whatever its first letter.
_CASELESS_MARKS = "؟।॥۔"
# End mark(s), closing quotes or brackets, whitespace, then the next sentence's first character;
# or a Chinese/Japanese end mark, which needs no space after it.
_BOUNDARY = re.compile(
    rf"(?P<mark>[.!?…{_CASELESS_MARKS}]+)(?P<close>[{_CLOSERS}]*)\s+(?=\S)"
    rf"|(?P<cjk>[。！？][。！？!?]*)(?P<cclose>[{_CLOSERS}]*)\s*(?=[^\s{_CLOSERS}。！？!?])"
)
_SOFT_BREAK = re.compile(r"[,;:—–،؛]\s+|\s-\s|[，、；：]")


def weight(text: str) -> int:
    """Length as spoken: Chinese, Japanese and Korean characters count three."""
    return sum(3 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in text)


def _index_for(text: str, limit: int) -> int:
    """The longest prefix of `text` (as an index) whose weight is at most `limit`."""
    total = 0
    for index, char in enumerate(text):
        total += 3 if unicodedata.east_asian_width(char) in ("W", "F") else 1
        if total > limit:
            return index
    return len(text)


def _unspaced(text: str) -> bool:
    return any(unicodedata.east_asian_width(char) in ("W", "F") for char in text)


def _starts_sentence(char: str, mark: str) -> bool:
    """Whether `char`, after an end mark and a space, begins a new sentence."""
    if any(m in _CASELESS_MARKS for m in mark) or char in _OPENERS or char.isdigit():
        return True
    if is_tag_mark(char):
        return True
    # Upper case, or a letter of a script without case (Arabic, Devanagari, Hangul, kana...).
    return char.isupper() or (char.isalpha() and not char.islower())


def _is_abbreviation(text_before_mark: str) -> bool:
    """True when the word before a period is an abbreviation or an initial (J. Smith)."""
    word = text_before_mark.rsplit(None, 1)[-1] if text_before_mark.strip() else ""
    word = word.lstrip("\"'“‘([" + _TAG_MARKS).lower()
    if not word:
        return False
    if len(word) == 1 and word.isalpha() and word.isascii():
        return True
    return word in ABBREVIATIONS


def _cut_point(window: str, limit: int) -> int:
    """Where to cut a too-long window: its last soft break, else its last space, else its end."""
    cut = max((m.end() for m in _SOFT_BREAK.finditer(window)), default=0)
    if weight(window[:cut]) < limit // 3:
        cut = window.rfind(" ") + 1
    return cut if cut > 0 else len(window)


def split_long(sentence: str, max_chars: int) -> list[str]:
    """Split a sentence weighing more than max_chars at the last soft break (or space)."""
    pieces: list[str] = []
    rest = sentence.strip()
    while weight(rest) > max_chars:
        window = rest[: _index_for(rest, max_chars)]
        cut = _cut_point(window, max_chars)
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        pieces.append(rest)
    return pieces


class SentenceSplitter:
    """Feed text deltas; get back the sentences that are complete so far."""

    def __init__(
        self, *, min_chars: int = 16, max_chars: int = 240, first_clause: bool = False
    ) -> None:
        self._buffer = ""
        self._pending = ""  # a short fragment waiting to be merged with the next sentence
        self._min_chars = min_chars
        self._max_chars = max_chars
        self._first_clause = first_clause
        self._emitted = False

    def feed(self, delta: str) -> list[str]:
        """Add streamed text; return the sentences it completed, in order."""
        self._buffer += delta
        out: list[str] = []
        start = 0
        for match in _BOUNDARY.finditer(self._buffer):
            if match.group("cjk"):
                following = self._buffer[match.end()]
                if (
                    match.group("cclose")
                    and following not in _OPENERS
                    and not match.group(0)[-1].isspace()
                ):
                    continue  # 「本当ですか？」と彼は言った: the quote is inside the sentence
                end = match.end("cclose")
            else:
                mark = match.group("mark")
                following = self._buffer[match.end()]
                if not _starts_sentence(following, mark):
                    continue
                if mark == "." and _is_abbreviation(self._buffer[start : match.start()]):
                    continue
                end = match.end("close")
            out.extend(self._emit(self._buffer[start:end]))
            start = match.end()
        self._buffer = self._buffer[start:]
        if self._first_clause and not self._emitted:
            out.extend(self._clause())
        # Without an end mark in sight, a run-on must still reach speech in bounded time.
        if weight(self._buffer) > 2 * self._max_chars:
            window = self._buffer[: _index_for(self._buffer, self._max_chars)]
            cut = _cut_point(window, self._max_chars)
            out.extend(self._emit(self._buffer[:cut]))
            self._buffer = self._buffer[cut:]
        return out

    def _clause(self) -> list[str]:
        """The first clause, once its break is in and it is a few words long."""
        for match in _SOFT_BREAK.finditer(self._buffer):
            head = _join(self._pending, self._buffer[: match.end()])
            words = len(head.split())
            if weight(head) >= self._min_chars and (words >= 3 or _unspaced(head)):
                emitted = self._emit(self._buffer[: match.end()])
                self._buffer = self._buffer[match.end() :]
                return emitted
        return []

    def flush(self) -> list[str]:
        """The stream ended: return whatever is left."""
        rest = _join(self._pending, self._buffer)
        self._pending = self._buffer = ""
        return split_long(rest, self._max_chars) if rest else []

    def _emit(self, sentence: str) -> list[str]:
        text = _join(self._pending, sentence)
        if not text:
            return []
        if weight(text) < self._min_chars:
            self._pending = text
            return []
        self._pending = ""
        self._emitted = True
        return split_long(text, self._max_chars)


def _join(first: str, second: str) -> str:
    """Two pieces as one: a space between them, except between Chinese or Japanese text."""
    first, second = first.strip(), second.strip()
    if not first or not second:
        return first or second
    wide = unicodedata.east_asian_width
    glue = "" if wide(first[-1]) in ("W", "F") and wide(second[0]) in ("W", "F") else " "
    return first + glue + second


def split_sentences(
    text: str, *, min_chars: int = 16, max_chars: int = 240, first_clause: bool = False
) -> list[str]:
    """Split a whole text the same way the streaming splitter would."""
    splitter = SentenceSplitter(min_chars=min_chars, max_chars=max_chars, first_clause=first_clause)
    return splitter.feed(text) + splitter.flush()
