"""One speech request from text to file: checks, queueing, synthesis, storage, metrics."""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Literal

import anyio.to_thread
import numpy as np
import numpy.typing as npt

from chatacter_common.emotions import NEUTRAL
from chatacter_common.service import Health, Preempted, StopSignal
from chatacter_common.telemetry import tracer
from vocalizr.audio import pcm16, streaming_wav_header, write_wav
from vocalizr.engines.base import SpeechEngine
from vocalizr.errors import (
    EmptyText,
    EngineNotReady,
    NothingToSay,
    SynthesisFailed,
    TextTooLong,
    UnknownVoice,
    UnsupportedLanguage,
    VocalizrError,
)
from vocalizr.files import FileStore
from vocalizr.jobs import JobQueue
from vocalizr.metrics import Metrics
from vocalizr.voices import Voice, VoiceRegistry
from vocalizr.words import Speech, WordTime, WordTiming

log = logging.getLogger(__name__)
_tracer = tracer(__name__)

WHITESPACE = re.compile(r"\s+")

# `first`: the first sentence of a reply, which someone is waiting to hear; it goes before the
# `normal` ones waiting, and stops a `normal` synthesis running when the engine can stop it.
Priority = Literal["normal", "first"]


@dataclass(frozen=True)
class SpeechRequest:
    """What the caller asked for, before any checks."""

    text: str
    voice: str
    language: str = "en"
    speed: float = 1.0
    caller: str | None = None  # who asks (uploaded voices are theirs only); None: in-process
    emotion: str | None = None  # one of the 28 labels (checked at the edge); None: neutral
    priority: Priority = "normal"


@dataclass(frozen=True)
class SpeechStream:
    """WAV bytes as they are made; `release` frees the queue place even if never iterated."""

    body: AsyncIterator[bytes]
    release: Callable[[], None]


@dataclass(frozen=True)
class SpeechResult:
    """A produced audio file, and when each word of the text is said in it."""

    id: str
    duration_s: float
    sample_rate: int
    engine: str
    synthesis_s: float
    words: tuple[WordTime, ...] = ()
    word_timing: WordTiming = "estimated"


class SpeechService:
    """The edge-independent core that the HTTP API and the Gradio tab both call."""

    def __init__(
        self,
        engine: SpeechEngine,
        voices: VoiceRegistry,
        files: FileStore,
        jobs: JobQueue,
        metrics: Metrics,
        max_text_chars: int,
    ) -> None:
        self.engine = engine
        self.voices = voices
        self.files = files
        self.jobs = jobs
        self.metrics = metrics
        self.max_text_chars = max_text_chars
        self.health = Health(retry_after_s=1)

    @property
    def ready(self) -> bool:
        """Whether the engine and the voices are loaded."""
        return self.health.ready

    @property
    def load_error(self) -> str | None:
        """Why loading failed (server paths taken out), or None."""
        return self.health.load_error

    def load(self) -> None:
        """Load the engine, then the characters' and uploaded voices (blocking: a worker thread
        runs it at start-up). A failure is kept for /healthz and the 503s, not raised."""
        if self.health.load(self._load, f"the {self.engine.name} engine failed to load"):
            log.info(
                "vocalizr ready: engine %s, %d voices", self.engine.name, len(self.voices.all())
            )

    def _load(self) -> tuple[str, str]:
        self.engine.load()
        self.voices.load_characters()
        self.voices.load_uploads()
        return self.engine.name, self.engine.device

    def ensure_ready(self) -> None:
        """EngineNotReady (503) while the engine loads, or with the reason if it failed."""
        if not self.ready:
            raise EngineNotReady(
                self.load_error or f"the {self.engine.name} engine is still loading; retry shortly"
            )

    def check(self, request: SpeechRequest) -> tuple[str, str]:
        """Cleaned text and the engine's language code, or the caller's mistake as an error."""
        self.ensure_ready()
        text = clean_text(request.text)
        if not text:
            raise EmptyText("text is empty; send the sentence to speak")
        if len(text) > self.max_text_chars:
            raise TextTooLong(
                f"text is {len(text)} characters; the limit is {self.max_text_chars} "
                "(VOCALIZR_MAX_TEXT_CHARS): send it a sentence or a few at a time"
            )
        return text, self.language_code(request.language)

    async def find_voice(self, voice_id: str, caller: str | None = None) -> Voice:
        """A known voice, or a character folder added since start-up, prepared now; else 404."""
        try:
            return self.voices.get(voice_id, caller)
        except UnknownVoice:
            folder = await anyio.to_thread.run_sync(self.voices.character_folder, voice_id)
            if folder is None:
                raise
        # Preparing a voice is engine work (Praat, XTTS encoders): queued like synthesis.
        async with self.jobs.slot():
            return await self.jobs.run(partial(self.voices.add_character, voice_id))

    def language_code(self, language: str) -> str:
        """`en`, `EN`, `en-US`, `en_us` → the engine's code; UnsupportedLanguage otherwise."""
        code = language.strip().lower().replace("_", "-")
        if code in self.engine.languages:
            return code
        if code.split("-")[0] in self.engine.languages:
            return code.split("-")[0]
        supported = ", ".join(self.engine.languages)
        raise UnsupportedLanguage(
            f"language {language[:20]!r} is not spoken by the {self.engine.name} engine; "
            f"supported: {supported}"
        )

    async def add_voice(self, data: bytes, owner: str) -> Voice:
        """Register an uploaded reference clip as `owner`'s voice (queued like synthesis)."""
        self.ensure_ready()
        async with self.jobs.slot():
            return await self.jobs.run(partial(self.voices.add_upload, data, owner))

    async def speak(self, request: SpeechRequest) -> SpeechResult:
        """Synthesize the text into a WAV file in the store."""
        text, language = self.check(request)
        await self.find_voice(request.voice, request.caller)
        voice = self.voices.emotion_voice(request.voice, request.emotion) or request.voice
        emotion = request.emotion or NEUTRAL
        urgent = request.priority == "first"
        # An urgent synthesis is never stopped; another is, where the engine can stop one.
        stop = StopSignal() if self.engine.stoppable and not urgent else None
        async with self.jobs.slot():
            try:
                return await self.jobs.run(
                    partial(
                        self._speak_blocking, text, voice, language, request.speed, emotion, stop
                    ),
                    work="synthesis",
                    urgent=urgent,
                    stop=stop,
                )
            finally:
                if stop is not None and stop.stops:
                    self.metrics.count_preemptions(self.engine.name, stop.stops)

    def _speak_blocking(
        self,
        text: str,
        voice: str,
        language: str,
        speed: float,
        emotion: str,
        stop: StopSignal | None = None,
    ) -> SpeechResult:
        started = time.perf_counter()
        speech = self._synthesize(text, voice, language, speed, emotion, stop)
        file_id, path = self.files.new_path()
        with _tracer.start_as_current_span("encoding"):
            write_wav(path, speech.samples, self.engine.sample_rate)
        self.files.keep(file_id)
        elapsed = time.perf_counter() - started
        duration = len(speech.samples) / self.engine.sample_rate
        self.metrics.count_job(self.engine.name, elapsed, duration)
        return SpeechResult(
            file_id,
            round(duration, 3),
            self.engine.sample_rate,
            self.engine.name,
            elapsed,
            speech.words,
            speech.word_timing,
        )

    def _synthesize(
        self,
        text: str,
        voice: str,
        language: str,
        speed: float,
        emotion: str,
        stop: StopSignal | None = None,
    ) -> Speech:
        try:
            speech = self.engine.synthesize_with_words(text, voice, language, speed, emotion, stop)
        except (VocalizrError, Preempted):  # Preempted: the queue runs it again
            raise
        except Exception as error:
            log.exception("synthesis failed for %d characters of text", len(text))
            raise SynthesisFailed(
                f"the {self.engine.name} engine could not speak this text ({type(error).__name__})"
            ) from None
        if speech.samples.size == 0:
            raise NothingToSay("the text has nothing speakable in it (only symbols?)")
        return speech

    async def stream(self, request: SpeechRequest) -> SpeechStream:
        """Checks and a queue place now; then a WAV header and PCM chunks as they are made."""
        text, language = self.check(request)
        await self.find_voice(request.voice, request.caller)
        voice = self.voices.emotion_voice(request.voice, request.emotion) or request.voice
        release = self.jobs.acquire()  # raises QueueFull before any byte is sent
        chunks = self.engine.stream(
            text, voice, language, request.speed, request.emotion or NEUTRAL
        )
        urgent = request.priority == "first"
        return SpeechStream(self._stream_body(chunks, release, urgent), release)

    async def _stream_body(
        self,
        chunks: Iterator[npt.NDArray[np.float32]],
        release: Callable[[], None],
        urgent: bool,
    ) -> AsyncIterator[bytes]:
        """A stream's chunks are made one job each, in the queue's order; none is stopped (the
        engine's generator is half-way through its text)."""
        started = time.perf_counter()
        produced = 0
        try:
            yield streaming_wav_header(self.engine.sample_rate)
            while True:
                chunk = await self.jobs.run(
                    partial(next, chunks, None), work="synthesis", urgent=urgent
                )
                if chunk is None:
                    break
                produced += chunk.size
                yield pcm16(chunk)
        except Exception:
            # Headers are sent already: the stream can only end early; the log says why.
            log.exception("streaming synthesis failed")
        finally:
            release()
            self.metrics.count_job(
                self.engine.name, time.perf_counter() - started, produced / self.engine.sample_rate
            )
            # Shielded: a client that hangs up cancels us, and the engine's generator must
            # still be closed (it frees model state) in a worker thread.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_close, chunks)


def _close(chunks: Iterator[npt.NDArray[np.float32]]) -> None:
    close = getattr(chunks, "close", None)
    try:
        if close is not None:
            close()
    except ValueError:
        pass  # still running in a worker thread after a hang-up; it ends with its sentence


def clean_text(text: str) -> str:
    """Drop control and unassigned characters, collapse whitespace."""
    kept = (
        " " if char.isspace() else char
        for char in text
        if char.isspace() or not unicodedata.category(char).startswith("C")
    )
    return WHITESPACE.sub(" ", "".join(kept)).strip()
