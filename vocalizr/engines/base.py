"""The interface every speech engine implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from chatacter_common.emotions import NEUTRAL
from chatacter_common.service import StopSignal
from vocalizr.audio import Clip
from vocalizr.words import Speech, estimate_words

# The voice id that asks for the engine's own voice, with no reference clip to match.
DEFAULT_VOICE = "default"


class SpeechEngine(ABC):
    """Text + a registered voice → mono float32 samples at `sample_rate`.

    `load` runs once at start-up; `add_voice` once per voice (its result is cached);
    `synthesize_with_words` (or `synthesize`) and `stream` per request, in a worker thread.
    """

    name: str
    sample_rate: int
    device: str = "cpu"
    languages: tuple[str, ...] = ()
    # Whether `synthesize_with_words` honours its `stop` signal, so that a reply's first sentence
    # need not wait for another synthesis already running (Piper). One that cannot (XTTS) only
    # has the queue's order: urgent requests before waiting ones.
    stoppable: bool = False

    @abstractmethod
    def load(self) -> None:
        """Load the model; slow, called once."""

    @abstractmethod
    def add_voice(self, voice_id: str, clip: Clip) -> None:
        """Prepare what the engine needs to speak in this reference clip's voice."""

    def remove_voice(self, voice_id: str) -> None:
        """Forget a voice (an expired upload); engines that keep per-voice state drop it."""
        return None

    def speaks_default(self) -> bool:
        """Whether `DEFAULT_VOICE` can be spoken now (an engine with a voice of its own: always)."""
        return True

    @abstractmethod
    def synthesize(
        self, text: str, voice_id: str, language: str, speed: float, emotion: str = NEUTRAL
    ) -> npt.NDArray[np.float32]:
        """Speak the whole text, in the emotion (a label) as far as the engine can; returns the
        samples."""

    def synthesize_with_words(
        self,
        text: str,
        voice_id: str,
        language: str,
        speed: float,
        emotion: str = NEUTRAL,
        stop: StopSignal | None = None,
    ) -> Speech:
        """`synthesize`, and when each word of the text is said. This default estimates the
        times by characters; an engine that knows its alignment overrides it. A `stoppable`
        engine raises Preempted when `stop` is raised while it synthesizes; others ignore it."""
        samples = self.synthesize(text, voice_id, language, speed, emotion)
        words = estimate_words(text, len(samples) / self.sample_rate)
        return Speech(samples, words, "estimated")

    def stream(
        self, text: str, voice_id: str, language: str, speed: float, emotion: str = NEUTRAL
    ) -> Iterator[npt.NDArray[np.float32]]:
        """Speak the text chunk by chunk, first audio as early as the engine allows."""
        yield self.synthesize(text, voice_id, language, speed, emotion)
