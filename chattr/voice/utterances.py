"""A microphone stream cut into turns: voice activity's start, the end of the turn, the audio.

The page's live mode streams the microphone here in short chunks (any rate, int16 or float).
`chattr.voice.vad` says where speech starts and pauses; this keeps the audio between, with a little
from just before the start so the first syllable is not clipped, ready to transcribe.

Where a turn ends is decided by meaning when a turn model is given (`chattr.voice.turn_end`): after
a short pause the model hears the speech so far; a complete turn ends there, an incomplete one
waits for more speech, up to a longer fallback pause. Without a model a fixed pause ends it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Literal

import av
import numpy as np
import numpy.typing as npt
import soundfile as sf

from chattr.voice.turn_end import TurnModel
from chattr.voice.vad import VAD_RATE, UtteranceDetector, VadOptions

PREROLL_S = 0.3  # audio kept from before the start
TAIL_S = 0.1  # and after the end (Whisper likes a soft ending)
MAX_UTTERANCE_S = 30.0  # cut off here, and sent as it is
# Without a turn model: people pause for breath mid-sentence when they talk to someone (0.35 s
# cut the test recording in three), and 0.55 s keeps the wait within 0.6 s.
PAUSE_ONLY_S = 0.55

EndedBy = Literal["meaning", "fallback", "pause", "flush", "length"]


@dataclass(frozen=True)
class TurnOptions:
    """When the end of a turn is decided (with a turn model)."""

    # Silence after voice activity's end of speech before the model is asked. Silero's score
    # trails the voice by 0.1-0.15 s, so 0.1 s here is about 0.25 s of real silence (pipecat
    # asks after 0.2 s of its VAD's silence); a 100 ms chunk later the turn is decided.
    pause_s: float = 0.1
    # Silence that ends a turn the model heard as unfinished: the person has stopped after all.
    fallback_s: float = 2.0
    # The model's "complete" above this; Smart Turn is trained for 0.5.
    threshold: float = 0.5


@dataclass(frozen=True)
class Utterance:
    """One stretch of speech: 16 kHz mono float32, with where it began and ended in the stream."""

    samples: npt.NDArray[np.float32]
    started_s: float  # stream time of the first voiced window
    ended_s: float  # stream time of the last voiced window
    ended_by: EndedBy = "pause"
    decided_s: float = 0.0  # stream time when the turn was found over
    complete: float | None = None  # the turn model's chance it was complete, where it was asked

    @property
    def duration_s(self) -> float:
        return len(self.samples) / VAD_RATE

    def wav(self) -> bytes:
        """The utterance as a 16-bit WAV file, as the transcription service takes it."""
        buffer = io.BytesIO()
        sf.write(buffer, np.clip(self.samples, -1, 1), VAD_RATE, subtype="PCM_16", format="WAV")
        return buffer.getvalue()


@dataclass
class Heard:
    """What one chunk brought."""

    speech_started: bool = False  # the person began to speak (barge-in, if the character talks)
    utterances: list[Utterance] = field(default_factory=list)


class UtteranceCollector:
    """Feed microphone chunks in order; get the moments speech starts and each finished utterance.

    One per conversation: it keeps the stream's voice-activity state and recent audio.
    """

    def __init__(
        self,
        options: VadOptions | None = None,
        *,
        turn_model: TurnModel | None = None,
        turn: TurnOptions | None = None,
    ) -> None:
        self.turn_model = turn_model
        self.turn = turn or TurnOptions()
        if options is None:
            # With a model, voice activity alone ends a turn only after the fallback pause.
            silence = self.turn.fallback_s if turn_model is not None else PAUSE_ONLY_S
            options = VadOptions(min_silence_s=silence)
        self._vad = UtteranceDetector(VAD_RATE, options)
        self._judged_pause: float | None = None  # the pause the model was asked about
        self.last_complete: float | None = None  # its answer
        self._resampler: Any = None
        self._rate = 0
        self._audio = np.zeros(0, dtype=np.float32)  # recent 16 kHz audio
        self._audio_start = 0  # the stream sample index of `_audio[0]`
        self._fed = 0  # samples fed so far
        self._start: float | None = None  # the utterance being heard began here (s)

    @property
    def stream_s(self) -> float:
        """How much audio has been heard so far, seconds."""
        return self._fed / VAD_RATE

    def feed(self, sample_rate: int, chunk: Any) -> Heard:
        """Take the next chunk (mono or channels-last, int16 or float); report what happened."""
        heard = Heard()
        samples = self._to_vad_rate(sample_rate, _mono_float(chunk))
        if samples.size == 0:
            return heard
        self._audio = np.concatenate([self._audio, samples])
        self._fed += samples.size
        for event in self._vad.feed(samples):
            if event.kind == "start":
                self._start = event.at_s
                heard.speech_started = True
            elif self._start is not None:
                ended_by: EndedBy = "fallback" if self.turn_model is not None else "pause"
                heard.utterances.append(self._cut(self._start, event.at_s, ended_by))
        if self._start is not None and self._heard_complete():
            for event in self._vad.finish():
                heard.utterances.append(self._cut(self._start, event.at_s, "meaning"))
        if self._start is not None and self.stream_s - self._start >= MAX_UTTERANCE_S:
            for event in self._vad.finish():
                heard.utterances.append(self._cut(self._start, event.at_s, "length"))
        if self._start is None:
            self._trim(self.stream_s - PREROLL_S)
        return heard

    @property
    def speech_start(self) -> float | None:
        """Where the utterance being heard began (stream seconds), or None between utterances."""
        return self._start

    def so_far(self) -> Utterance | None:
        """The utterance being heard, up to now (its audio is not consumed)."""
        if self._start is None:
            return None
        return self._slice(self._start, self.stream_s)

    def flush(self) -> Utterance | None:
        """The utterance being heard, ended now (the microphone stopped)."""
        events = self._vad.finish()
        if self._start is None or not events:
            return None
        return self._cut(self._start, events[-1].at_s, "flush")

    def _heard_complete(self) -> bool:
        """Once per pause of `turn.pause_s`: does the turn model hear a finished turn?"""
        if self.turn_model is None or not self._vad.speaking or self._start is None:
            return False
        last_speech = self._vad.last_speech_s
        if self.stream_s - last_speech < self.turn.pause_s or self._judged_pause == last_speech:
            return False
        self._judged_pause = last_speech
        speech = self._slice(self._start, last_speech).samples
        self.last_complete = self.turn_model.complete_probability(speech)
        return self.last_complete >= self.turn.threshold

    def tentative(self, min_pause_s: float) -> Utterance | None:
        """The utterance as it will be if the pause under way (at least `min_pause_s`) turns out
        to end it; None otherwise. Nothing is consumed: if the person goes on, the utterance
        grows; if not, `feed` ends it with the same start and end (its tail of silence may be
        longer by then)."""
        pause = self._vad.pause_s
        if self._start is None or pause < min_pause_s:
            return None
        return self._slice(self._start, self._vad.last_speech_s)

    def _slice(self, start_s: float, end_s: float) -> Utterance:
        first = max(self._audio_start, round((start_s - PREROLL_S) * VAD_RATE))
        last = min(self._fed, round((end_s + TAIL_S) * VAD_RATE))
        samples = self._audio[first - self._audio_start : last - self._audio_start].copy()
        return Utterance(samples=samples, started_s=start_s, ended_s=end_s)

    def _cut(self, start_s: float, end_s: float, ended_by: EndedBy) -> Utterance:
        cut = self._slice(start_s, end_s)
        complete = self.last_complete if self._judged_pause is not None else None
        self._start = None
        self._judged_pause = None
        self.last_complete = None
        self._trim(end_s)
        return Utterance(cut.samples, start_s, end_s, ended_by, self.stream_s, complete)

    def _trim(self, keep_from_s: float) -> None:
        keep_from = min(self._fed, max(self._audio_start, round(keep_from_s * VAD_RATE)))
        self._audio = self._audio[keep_from - self._audio_start :]
        self._audio_start = keep_from

    def _to_vad_rate(
        self, sample_rate: int, samples: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        if sample_rate == VAD_RATE:
            return samples
        if self._resampler is None or sample_rate != self._rate:
            # PyAV's swresample keeps its filter state across chunks: no clicks at the seams.
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=VAD_RATE)
            self._rate = sample_rate
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = sample_rate
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def _mono_float(chunk: Any) -> npt.NDArray[np.float32]:
    """Float32 mono in [-1, 1] from what a browser microphone gives (int16, maybe stereo)."""
    data = np.asarray(chunk)
    if np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max)
    else:
        data = np.nan_to_num(data.astype(np.float32))
    if data.ndim == 2:
        data = data.mean(axis=1)  # Gradio gives (samples, channels)
    return np.ascontiguousarray(data.reshape(-1), dtype=np.float32)
