"""Where each word of a speech ends in its audio: from the engine's alignment, or estimated.

A caller that stops playback part-way (a person talking over the character) reads these to know
which words were heard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

WordTiming = Literal["aligned", "estimated"]


@dataclass(frozen=True)
class WordTime:
    """One word of the text spoken (split at whitespace), and when it is said, in seconds from
    the start of the audio."""

    word: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Speech:
    """Samples and the times of the words in them; `word_timing` says how they were found:
    `aligned` from the engine's own durations, `estimated` spread over the audio by characters."""

    samples: npt.NDArray[np.float32]
    words: tuple[WordTime, ...]
    word_timing: WordTiming


def estimate_words(text: str, duration_s: float) -> tuple[WordTime, ...]:
    """The words of `text` spread over `duration_s` by their length in characters (the space
    after a word counts to it): for engines that do not say when each word is spoken."""
    words = text.split()
    weights = np.array([len(word) + 1 for word in words], dtype=np.float64)
    if not words or duration_s <= 0:
        return tuple(WordTime(word, 0.0, 0.0) for word in words)
    ends = np.cumsum(weights) / weights.sum() * duration_s
    starts = np.concatenate([[0.0], ends[:-1]])
    return tuple(
        WordTime(word, round(float(start), 3), round(float(end), 3))
        for word, start, end in zip(words, starts, ends, strict=True)
    )


def scale_words(words: Sequence[WordTime], factor: float) -> tuple[WordTime, ...]:
    """The same words on audio stretched by `factor` (a resynthesis that changed its length)."""
    return tuple(
        WordTime(w.word, round(w.start_s * factor, 3), round(w.end_s * factor, 3)) for w in words
    )
