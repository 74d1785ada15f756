"""Moonshine tiny (English) on ONNX Runtime: speech to text whose cost follows the recording's
length, where Whisper pads every call to 30 s.

The weights are Moonshine AI's `tiny-en` in ONNX Runtime's format (MIT), as the `moonshine-voice`
0.1.0 wheel ships them; `make setup` copies the three files (and the licence) out of it into
`.venv/share/vocalizr/moonshine-tiny-en/`, so nothing is downloaded at run time. The wheel's own
runtime (a native library with an ONNX Runtime of its own) is not used: the project's ONNX
Runtime runs the two graphs, and the greedy decoding is here.

A recording is cut into speech segments by the Silero VAD that ships in the faster-whisper wheel
(silence and noise reach no decoder, which is where speech models invent words); each segment is
one transcript segment, timed by the VAD.
"""

from __future__ import annotations

import logging
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vocalizr.errors import EngineNotReady
from vocalizr.settings import Settings
from vocalizr.speech_to_text import WHISPER_RATE, Segment, SpeechToText, Transcript

log = logging.getLogger(__name__)

MODEL_FOLDER = "moonshine-tiny-en"
ENCODER_FILE = "encoder_model.ort"
DECODER_FILE = "decoder_model_merged.ort"
TOKENIZER_FILE = "tokenizer.bin"
MODEL_FILES = (ENCODER_FILE, DECODER_FILE, TOKENIZER_FILE)
# tiny: 6 decoder layers, 8 key/value heads of 36 dimensions (read from the graph's inputs too).
# Moonshine's authors cap the tokens at about 6.5 per second of speech: past that the decoder is
# looping, not transcribing; the slack lets a one-word answer finish.
TOKENS_PER_SECOND = 6.5
TOKEN_SLACK = 10
# Segments the model hears at once: it was trained on utterances up to about 30 s; the VAD cuts
# longer speech at its last pause before this length.
MAX_SEGMENT_S = 20.0
SPECIAL_TOKEN = re.compile(rb"<<ST_\d+>>|<unk>|<s>|</s>")
WORD_BOUNDARY = "\u2581"  # SentencePiece's mark for a space before a word


def default_model_dir() -> Path:
    """Where `make setup` puts the model: inside the virtual environment."""
    return Path(sys.prefix) / "share" / "vocalizr" / MODEL_FOLDER


def missing_files(folder: Path) -> list[str]:
    """The model files `folder` lacks (all of them when it is not a folder)."""
    return [name for name in MODEL_FILES if not (folder / name).is_file()]


class MoonshineModelMissing(RuntimeError):
    """The model folder lacks a file the engine needs."""


@dataclass(frozen=True)
class Vocabulary:
    """Moonshine's `tokenizer.bin`: each token's bytes, length-prefixed, in id order (one byte
    of length, since no token is longer than 127 bytes); ids 3-258 are the raw bytes 0-255."""

    pieces: tuple[bytes, ...]
    start_id: int
    end_id: int
    special: frozenset[int]

    @classmethod
    def read(cls, path: Path) -> Vocabulary:
        data = path.read_bytes()
        pieces: list[bytes] = []
        offset = 0
        while offset < len(data):
            length = data[offset]
            if length >= 0x80 or offset + 1 + length > len(data):
                raise ValueError(f"{path.name} is not a Moonshine tokenizer (at byte {offset})")
            pieces.append(data[offset + 1 : offset + 1 + length])
            offset += 1 + length
        if b"<s>" not in pieces or b"</s>" not in pieces:
            raise ValueError(f"{path.name} lacks the start and end tokens <s> and </s>")
        special = frozenset(i for i, piece in enumerate(pieces) if SPECIAL_TOKEN.fullmatch(piece))
        return cls(tuple(pieces), pieces.index(b"<s>"), pieces.index(b"</s>"), special)

    def decode(self, ids: list[int]) -> str:
        """The text of token ids: their bytes joined (byte tokens may split a character), the
        word marks turned into spaces."""
        raw = b"".join(self.pieces[i] for i in ids if i not in self.special)
        return raw.decode("utf-8", errors="replace").replace(WORD_BOUNDARY, " ").strip()


class MoonshineEngine(SpeechToText):
    """Moonshine tiny-en: an encoder over the raw 16 kHz samples, a decoder with a key/value
    cache, greedy. English only; `prompt` and `temperature` are not used (no such inputs)."""

    name = "moonshine"

    def __init__(self, settings: Settings) -> None:
        folder = Path(settings.stt_model) if settings.stt_model else default_model_dir()
        self.model_dir = folder
        self.model_name = folder.name
        self.threads = settings.stt_threads
        self._encoder: Any = None
        self._decoder: Any = None
        self._vocabulary: Vocabulary | None = None
        # The decoder's cache: each `present.*` output feeds the next step's `past_key_values.*`.
        self._cache: dict[str, str] = {}
        self._cache_shape: tuple[int, int] = (0, 0)

    def load(self) -> None:
        import onnxruntime as ort

        missing = missing_files(self.model_dir)
        if missing:
            raise MoonshineModelMissing(
                f"the Moonshine model folder {self.model_dir} lacks {', '.join(missing)}: run "
                "`make setup` (it copies them out of the moonshine-voice wheel), set "
                "VOCALIZR_STT_MODEL to a folder that has them, or VOCALIZR_STT_ENGINE="
                "faster-whisper for a Whisper model"
            )
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # Transcription comes in bursts beside synthesis and other programs: workers that spin
        # between the decoder's many small steps take cores others need, and lose them back
        # (8 s of speech on 2 busy cores, load 13: 1.9 s with two spinning threads, 1.0 s with
        # two that sleep).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        self._encoder = ort.InferenceSession(
            str(self.model_dir / ENCODER_FILE), sess_options=options, providers=providers
        )
        self._decoder = ort.InferenceSession(
            str(self.model_dir / DECODER_FILE), sess_options=options, providers=providers
        )
        self._vocabulary = Vocabulary.read(self.model_dir / TOKENIZER_FILE)
        past = {
            entry.name: entry.shape
            for entry in self._decoder.get_inputs()
            if entry.name.startswith("past_key_values.")
        }
        self._cache = {
            entry.name: entry.name.replace("present.", "past_key_values.", 1)
            for entry in self._decoder.get_outputs()
            if entry.name.startswith("present.")
        }
        if not past or sorted(self._cache.values()) != sorted(past):
            raise ValueError(f"{DECODER_FILE} is not a Moonshine decoder with a key/value cache")
        # (batch, heads, length, width): tiny has 8 heads of 36.
        _, heads, _, width = next(iter(past.values()))
        self._cache_shape = (int(heads), int(width))

    def languages(self) -> tuple[str, ...]:
        self._loaded()
        return ("en",)

    def other_languages_hint(self) -> str:
        return (
            "set VOCALIZR_STT_ENGINE=faster-whisper and VOCALIZR_STT_MODEL to a multilingual "
            "Whisper model (e.g. `base`)"
        )

    def _loaded(self) -> Vocabulary:
        if self._vocabulary is None:
            raise EngineNotReady("the speech-to-text model is not loaded yet; retry shortly")
        return self._vocabulary

    def transcribe(
        self,
        samples: npt.NDArray[np.float32],
        language: str | None,
        prompt: str | None,
        temperature: float,
        *,
        timestamps: bool = True,
    ) -> Transcript:
        vocabulary = self._loaded()
        # The VAD's times cost nothing extra: segments are timed with or without `timestamps`.
        segments = tuple(
            Segment(
                round(start / WHISPER_RATE, 3),
                round(end / WHISPER_RATE, 3),
                vocabulary.decode(self.generate(samples[start:end])),
            )
            for start, end in speech_spans(samples)
        )
        text = " ".join(segment.text for segment in segments if segment.text)
        return Transcript(
            text, "en", round(len(samples) / WHISPER_RATE, 3), tuple(s for s in segments if s.text)
        )

    def generate(self, samples: npt.NDArray[np.float32]) -> list[int]:
        """Greedy token ids for one segment of speech (16 kHz mono), without <s> and </s>."""
        vocabulary = self._loaded()
        audio = np.ascontiguousarray(samples, dtype=np.float32)[None, :]
        mask = np.ones(audio.shape, dtype=np.int64)
        (hidden,) = self._encoder.run(
            ["last_hidden_state"], {"input_values": audio, "attention_mask": mask}
        )
        heads, width = self._cache_shape
        cache = {name: np.zeros((1, heads, 0, width), np.float32) for name in self._cache.values()}
        outputs = ["logits", *self._cache]
        tokens: list[int] = []
        previous = vocabulary.start_id
        budget = math.ceil(samples.size / WHISPER_RATE * TOKENS_PER_SECOND) + TOKEN_SLACK
        for step in range(budget):
            logits, *present = self._decoder.run(
                outputs,
                {
                    "input_ids": np.array([[previous]], dtype=np.int64),
                    "encoder_hidden_states": hidden,
                    "encoder_attention_mask": mask,
                    # The first step computes the cross-attention keys from the encoder's
                    # output; later steps reuse them and grow only the decoder's own cache.
                    "use_cache_branch": np.array([step > 0]),
                    **cache,
                },
            )
            previous = int(np.argmax(logits[0, -1]))
            if previous == vocabulary.end_id:
                break
            tokens.append(previous)
            for output, value in zip(self._cache, present, strict=True):
                if step == 0 or ".decoder." in output:
                    cache[self._cache[output]] = value
        else:
            seconds = samples.size / WHISPER_RATE
            log.info("moonshine stopped at its token budget (%d) for %.1f s", budget, seconds)
        return tokens


def speech_spans(samples: npt.NDArray[np.float32]) -> list[tuple[int, int]]:
    """(start, end) sample offsets of the speech in a 16 kHz recording, by Silero VAD (the
    model inside the faster-whisper wheel), each at most MAX_SEGMENT_S long."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(max_speech_duration_s=MAX_SEGMENT_S)
    spans = get_speech_timestamps(samples, vad_options=options, sampling_rate=WHISPER_RATE)
    return [(int(span["start"]), int(span["end"])) for span in spans]
