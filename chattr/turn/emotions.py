"""An emotion for every sentence of a reply: the LLM's `[label]` tags, else a classifier.

The prompt asks the model to begin a sentence with a tag such as `[joy]` when its feeling changes
(Open-LLM-VTuber's way, with go-emotions' 28 labels). `TagReader` takes the tags out of the
streamed reply, even when one arrives split across tokens (`[jo` + `y]`): a known tag becomes one
private-use character that the sentence splitter carries along with its sentence, an unknown one
is dropped, so neither is ever shown, stored or spoken. `EmotionTrack` then gives each sentence
its emotion: its own tag; else the last tag of the reply (a tag holds until the next); else, in a
reply not tagged so far, `EmotionClassifier`'s guess, or the previous sentence's emotion where the
guess is unsure.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from chatacter_common.emotions import EMOTION_LABELS, NEUTRAL
from chattr.knowledge.embeddings import Embedder
from chattr.turn.emotion_prototypes import PROTOTYPES
from chattr.turn.emotion_vectors import prototype_texts, read_prototype_vectors
from chattr.turn.sentences import TAG_MARK_BASE

# A tag's label is a word: one longer than this, or with anything but letters in it, is text.
MAX_TAG_CHARS = 24
_MARKS = {chr(TAG_MARK_BASE + index): label for index, label in enumerate(EMOTION_LABELS)}
_MARK_OF = {label: mark for mark, label in _MARKS.items()}


def tag_mark(label: str) -> str:
    """The character that stands for `label`'s tag inside the text sent to speech."""
    return _MARK_OF[label]


def without_marks(text: str) -> str:
    """`text` with the tag marks taken out."""
    return "".join(char for char in text if char not in _MARKS)


def _label_of(inside: str) -> str | None:
    """The label a bracket's contents name, or None when they name none of the 28."""
    cleaned = inside.strip().lower()
    return cleaned if cleaned in _MARK_OF else None


def _could_be_tag(inside: str) -> bool:
    """Whether the contents of an open bracket may still turn out a tag."""
    return len(inside) <= MAX_TAG_CHARS and all(c.isalpha() or c in " _-" for c in inside)


class TagReader:
    """Feed reply deltas; get back the text with each known tag as its mark, unknown tags gone.

    A `[` waits for the deltas after it until its contents show it a tag or plain text.
    """

    def __init__(self) -> None:
        self._held = ""
        self._last = ""  # the last character given out
        self._after_tag = False  # spaces after a tag are dropped: "Hi. [joy] Yes" shows "Hi. Yes"

    def feed(self, delta: str) -> str:
        text, self._held = self._held + delta, ""
        out: list[str] = []
        start = 0
        while (opening := text.find("[", start)) != -1:
            self._text(out, text[start:opening])
            closing = text.find("]", opening + 1)
            inside = text[opening + 1 : closing if closing != -1 else len(text)]
            if not _could_be_tag(inside):
                self._text(out, "[")  # a bracketed note, not a tag: the speech filter decides
                start = opening + 1
                continue
            if closing == -1:
                self._held = text[opening:]
                return "".join(out)
            label = _label_of(inside)
            if label is not None:
                # The splitter sees a sentence start only after a space: "Hi.[joy]Yes" too.
                if self._last and not self._last.isspace():
                    self._text(out, " ")
                out.append(tag_mark(label))
            # An unknown tag is dropped whole: never spoken, never shown.
            self._after_tag = True
            start = closing + 1
        self._text(out, text[start:])
        return "".join(out)

    def _text(self, out: list[str], text: str) -> None:
        if self._after_tag:
            text = text.lstrip(" \t")
            self._after_tag = not text
        if text:
            out.append(text)
            self._last = text[-1]

    def flush(self) -> str:
        """The stream ended: an open bracket held back is text after all."""
        out: list[str] = []
        self._text(out, self._held)
        self._held = ""
        return "".join(out)


@dataclass(frozen=True)
class Guess:
    """The classifier's label for a sentence, with its cosine and its lead over the runner-up."""

    label: str
    score: float
    margin: float


class EmotionClassifier:
    """Labels a sentence by the nearest label's prototypes, by the embedder chattr has loaded.

    Each label's score is the mean of its best two prototype cosines; the prototypes are embedded
    once, on first use. A guess whose score or lead is below the thresholds is unsure (`label`
    then answers None); the thresholds were chosen on tests/chattr/turn/emotion_samples.py
    (bench/emotions.py measures them).
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        prototypes: dict[str, tuple[str, ...]] = PROTOTYPES,
        min_score: float = 0.30,
        min_margin: float = 0.03,
    ) -> None:
        self.embedder = embedder
        self.prototypes = prototypes
        self.min_score = min_score
        self.min_margin = min_margin
        self._labels = list(prototypes)
        self._matrix: npt.NDArray[np.float32] | None = None
        self._owner: npt.NDArray[np.int64] | None = None
        self._lock = threading.Lock()

    def _prototype_vectors(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        with self._lock:
            if self._matrix is None or self._owner is None:
                owner = [i for i, label in enumerate(self._labels) for _ in self.prototypes[label]]
                matrix = read_prototype_vectors(self.prototypes, self.embedder)
                if matrix is None:
                    vectors = self.embedder.embed_documents(prototype_texts(self.prototypes))
                    matrix = np.asarray(vectors, dtype=np.float32)
                self._matrix = matrix
                self._owner = np.asarray(owner, dtype=np.int64)
            return self._matrix, self._owner

    def prepare(self) -> None:
        """Read or embed the prototypes' vectors now (otherwise on the first guess)."""
        self._prototype_vectors()

    def guess(self, sentence: str) -> Guess:
        """The nearest label, however unsure."""
        matrix, owner = self._prototype_vectors()
        vector = np.asarray(self.embedder.embed_query(sentence), dtype=np.float32)
        cosines = matrix @ vector
        scores = np.empty(len(self._labels), dtype=np.float32)
        for index in range(len(self._labels)):
            best = np.sort(cosines[owner == index])[-2:]
            scores[index] = best.mean()
        order = np.argsort(scores)[::-1]
        first, second = float(scores[order[0]]), float(scores[order[1]])
        return Guess(self._labels[int(order[0])], first, first - second)

    def label(self, sentence: str) -> str | None:
        """The sentence's label, or None where the guess is unsure."""
        guess = self.guess(sentence)
        # Plain statements match the neutral prototypes only loosely (their topics differ), but
        # clearly better than any feeling; and neutral is the safe guess, so it needs only a lead.
        weak = guess.score < self.min_score and guess.label != NEUTRAL
        if weak or guess.margin < self.min_margin:
            return None
        return guess.label


@dataclass(frozen=True)
class SentenceEmotion:
    """A sentence as spoken, its emotion, and the emotion of the sentence before it."""

    text: str
    emotion: str
    previous: str | None


class EmotionTrack:
    """The emotions of one reply's sentences, in order."""

    def __init__(self) -> None:
        self.tagged: str | None = None  # the reply's last tag, which holds until the next
        self.previous: str | None = None  # the emotion of the sentence before

    @staticmethod
    def tags_in(sentence: str) -> list[str]:
        return [_MARKS[char] for char in sentence if char in _MARKS]

    def needs_classifier(self, sentence: str) -> bool:
        """Whether no tag decides this sentence's emotion."""
        return self.tagged is None and not self.tags_in(sentence)

    def hold(self, sentence: str) -> None:
        """A piece with nothing to speak: its tags still hold for the sentences after it."""
        tags = self.tags_in(sentence)
        if tags:
            self.tagged = tags[-1]

    def next(self, sentence: str, guessed: str | None = None) -> SentenceEmotion:
        """The emotion of the next sentence (carrying tag marks); `guessed`: the classifier's
        sure label for it, asked where `needs_classifier`.

        A sentence with a tag in it takes its first (a short sentence merged with the next may
        hold two); the last one holds on after it.
        """
        tags = self.tags_in(sentence)
        text = without_marks(sentence)
        if tags:
            emotion = tags[0]
            self.tagged = tags[-1]
        elif self.tagged is not None:
            emotion = self.tagged
        else:
            emotion = guessed or self.previous or NEUTRAL
        previous, self.previous = self.previous, emotion
        return SentenceEmotion(text, emotion, previous)
