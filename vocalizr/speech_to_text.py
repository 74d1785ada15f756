"""The speech-to-text interface: 16 kHz samples in, a timed transcript out. Each engine
(`transcription.py`'s faster-whisper, `moonshine.py`) implements `SpeechToText`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Whisper listens at 16 kHz; every clip is resampled to it before transcription.
WHISPER_RATE = 16_000


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    text: str
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0


@dataclass(frozen=True)
class Transcript:
    """What was said: the whole text, its language code, and timed segments."""

    text: str
    language: str
    duration_s: float
    segments: tuple[Segment, ...]
    transcription_s: float = 0.0


class SpeechToText(ABC):
    """16 kHz mono float32 samples → a transcript. `load` once; `transcribe` per request."""

    name: str
    model_name: str = ""
    device: str = "cpu"

    @abstractmethod
    def load(self) -> None:
        """Load the model; slow, called once."""

    @abstractmethod
    def languages(self) -> tuple[str, ...]:
        """Language codes the loaded model understands."""

    def other_languages_hint(self) -> str:
        """What to set for languages an English-only model lacks."""
        return "set VOCALIZR_STT_MODEL to a multilingual one (e.g. `base`)"

    @abstractmethod
    def transcribe(
        self,
        samples: npt.NDArray[np.float32],
        language: str | None,
        prompt: str | None,
        temperature: float,
        *,
        timestamps: bool = True,
    ) -> Transcript:
        """Transcribe the samples; `language` None lets the model detect it. Without
        `timestamps` the text comes sooner, as one segment spanning the recording."""
