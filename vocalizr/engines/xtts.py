"""XTTS-v2 through Coqui TTS (`coqui-tts`): true voice cloning, GPU when present."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from chatacter_common.emotions import NEUTRAL
from chatacter_common.zero_gpu import gpu
from vocalizr.audio import Clip
from vocalizr.engines.base import DEFAULT_VOICE, SpeechEngine
from vocalizr.errors import UnknownVoice
from vocalizr.settings import Settings

log = logging.getLogger(__name__)

SENTENCE_END = re.compile(r"(?<=[.!?…。！？])\s+")
# GPT tokens per streamed chunk: ~0.9 s of audio each; smaller means earlier first audio.
STREAM_CHUNK_TOKENS = 20
NO_DEFAULT_VOICE = (
    "the xtts engine has no voice of its own: it needs a reference clip to clone. "
    "Upload one to POST /v1/voices or give the character a voice.wav"
)


class XttsEngine(SpeechEngine):
    """An XTTS checkpoint loaded once; per-voice conditioning latents cached (memory + disk)."""

    name = "xtts"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.device = settings.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.fp16 = settings.xtts_fp16 and self.device.startswith("cuda")
        self.sample_rate = 24000
        self.cache_dir = settings.data_dir / "cache" / "xtts_latents"
        self.latent_computations = 0  # clips actually run through the encoders (not cached)
        self._model: Any = None
        self._config: Any = None
        self._fingerprint = ""
        self._voices: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        from TTS.tts.configs.xtts_config import XttsConfig
        from TTS.tts.models.xtts import Xtts

        checkpoint_dir = self._checkpoint_dir()
        config = XttsConfig()
        config.load_json(str(checkpoint_dir / "config.json"))
        model = Xtts(config)
        model.load_checkpoint(config, checkpoint_dir=str(checkpoint_dir), eval=True)
        model.to(self.device)
        self._model, self._config = model, config
        self.sample_rate = int(config.model_args.output_sample_rate)
        self.languages = tuple(config.languages)
        self._fingerprint = _fingerprint(checkpoint_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        log.info("xtts loaded from %s on %s (fp16 %s)", checkpoint_dir, self.device, self.fp16)

    def _checkpoint_dir(self) -> Path:
        if self.settings.xtts_dir is not None:
            return self.settings.xtts_dir
        # Downloads on first use; needs internet and accepting Coqui's licence (COQUI_TOS_AGREED=1).
        from TTS.utils.manage import ModelManager

        path, _, _ = ModelManager().download_model(self.settings.xtts_model_name)
        return Path(path)

    def remove_voice(self, voice_id: str) -> None:
        with self._lock:
            self._voices.pop(voice_id, None)

    def add_voice(self, voice_id: str, clip: Clip) -> None:
        latents = self._cached_latents(clip)
        with self._lock:
            self._voices[voice_id] = latents

    def _cached_latents(self, clip: Clip) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.cache_dir / f"{clip.content_hash[:32]}-{self._fingerprint}.pt"
        if path.exists():
            try:
                saved = torch.load(path, map_location="cpu", weights_only=True)
                return saved["gpt_cond_latent"], saved["speaker_embedding"]
            except Exception:
                log.warning("ignoring a broken latents cache file %s", path)
        latents = self._compute_latents(clip)
        self.latent_computations += 1
        torch.save({"gpt_cond_latent": latents[0], "speaker_embedding": latents[1]}, path)
        return latents

    # The encoders run here, not in add_voice: a ZeroGPU call keeps nothing it stores on self.
    @gpu()
    def _compute_latents(self, clip: Clip) -> tuple[torch.Tensor, torch.Tensor]:
        model, config = self._require_model()
        # Tensors, not paths: Coqui's own loader needs torchcodec and FFmpeg's system libraries.
        max_samples = int(config.max_ref_len * clip.sample_rate)
        audio = torch.from_numpy(clip.samples[:max_samples].copy())[None].to(model.device)
        gpt_cond_latent = model.get_gpt_cond_latents(
            audio,
            clip.sample_rate,
            length=config.gpt_cond_len,
            chunk_length=config.gpt_cond_chunk_len,
        )
        speaker_embedding = model.get_speaker_embedding(audio, clip.sample_rate)
        return gpt_cond_latent.float().cpu(), speaker_embedding.float().cpu()

    def has_latents(self, voice_id: str) -> bool:
        with self._lock:
            return voice_id in self._voices

    @gpu()
    def synthesize(
        self, text: str, voice_id: str, language: str, speed: float, emotion: str = NEUTRAL
    ) -> npt.NDArray[np.float32]:
        # The emotion is in the voice: the service passes `<voice>@<label>` when the character
        # has a clip for it (voice/<label>.wav), and XTTS clones that clip's delivery.
        model, config = self._require_model()
        gpt_cond_latent, speaker_embedding = self._latents(voice_id)
        wavs = []
        for piece in self._pieces(text, language):
            with self._autocast():
                out = model.inference(
                    piece,
                    language,
                    gpt_cond_latent,
                    speaker_embedding,
                    temperature=config.temperature,
                    length_penalty=config.length_penalty,
                    repetition_penalty=config.repetition_penalty,
                    top_k=config.top_k,
                    top_p=config.top_p,
                    speed=speed,
                )
            wavs.append(np.asarray(out["wav"], dtype=np.float32).reshape(-1))
        return np.concatenate(wavs) if wavs else np.zeros(0, dtype=np.float32)

    @gpu()
    def stream(
        self, text: str, voice_id: str, language: str, speed: float, emotion: str = NEUTRAL
    ) -> Iterator[npt.NDArray[np.float32]]:
        model, config = self._require_model()
        gpt_cond_latent, speaker_embedding = self._latents(voice_id)
        for piece in self._pieces(text, language):
            with self._autocast():
                chunks = model.inference_stream(
                    piece,
                    language,
                    gpt_cond_latent,
                    speaker_embedding,
                    stream_chunk_size=STREAM_CHUNK_TOKENS,
                    temperature=config.temperature,
                    length_penalty=config.length_penalty,
                    repetition_penalty=config.repetition_penalty,
                    top_k=config.top_k,
                    top_p=config.top_p,
                    speed=speed,
                )
                try:
                    for chunk in chunks:
                        yield chunk.float().cpu().numpy().reshape(-1)
                except IndexError:
                    # coqui-tts 0.28 bounds streamed generation by the embedding width, not the
                    # sequence length (gpt.get_generator: `fake_inputs.shape[-1]`), so a piece
                    # that never emits its stop token runs off the position table. The audio
                    # so far is kept; the rest of this piece (under one chunk) is lost.
                    log.warning("xtts stream hit the maximum audio length; piece cut short")

    def _pieces(self, text: str, language: str) -> list[str]:
        model, _ = self._require_model()
        return split_text(text, model.tokenizer.char_limits.get(language, 250))

    def speaks_default(self) -> bool:
        # XTTS has no voice of its own: "default" borrows the first registered voice.
        with self._lock:
            return bool(self._voices)

    def _latents(self, voice_id: str) -> tuple[torch.Tensor, torch.Tensor]:
        with self._lock:
            if voice_id == DEFAULT_VOICE and voice_id not in self._voices:
                if not self._voices:
                    raise UnknownVoice(NO_DEFAULT_VOICE)
                voice_id = next(iter(self._voices))
            gpt_cond_latent, speaker_embedding = self._voices[voice_id]
        return gpt_cond_latent.to(self.device), speaker_embedding.to(self.device)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.fp16:
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _require_model(self) -> tuple[Any, Any]:
        if self._model is None:
            raise RuntimeError("xtts engine used before load()")
        return self._model, self._config


def split_text(text: str, limit: int) -> list[str]:
    """Sentences packed into pieces of at most `limit` characters (XTTS's per-language limit).

    Coqui's own splitter needs spaCy; sentence ends, then commas, then spaces do here.
    """
    pieces: list[str] = []
    current = ""
    for sentence in _break(text.strip(), limit):
        if current and len(current) + 1 + len(sentence) > limit:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}" if current else sentence
    if current:
        pieces.append(current)
    return pieces


def _break(text: str, limit: int) -> list[str]:
    """Sentences, each cut further at commas or spaces when longer than `limit`."""
    parts: list[str] = []
    for sentence in SENTENCE_END.split(text):
        while len(sentence) > limit:
            cut = max(sentence.rfind(", ", 0, limit), sentence.rfind(" ", 0, limit))
            cut = cut if cut > 0 else limit
            parts.append(sentence[:cut].strip(" ,"))
            sentence = sentence[cut:].strip(" ,")
        if sentence:
            parts.append(sentence)
    return parts


def _fingerprint(checkpoint_dir: Path) -> str:
    """Identifies the checkpoint, so latents from another model are never reused."""
    digest = hashlib.sha256((checkpoint_dir / "config.json").read_bytes())
    model_file = checkpoint_dir / "model.pth"
    if model_file.exists():
        stat = model_file.stat()
        digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]
