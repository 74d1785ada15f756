"""visualizr's settings, read once from the environment (prefix VISUALIZR_) or a .env file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the talking-head service; the README's table is generated from these."""

    model_config = SettingsConfigDict(env_prefix="VISUALIZR_", env_file=".env", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Interface the HTTP server listens on.")
    port: int = Field(default=8002, ge=0, le=65535, description="Port the HTTP server listens on.")
    engine: str = Field(
        default="warp",
        description="Talking-head engine: `warp` (weight-free CPU landmark warp, the default) "
        "or `musetalk` (diffusers lip-sync in the MuseTalk v1.5 layout; "
        "needs VISUALIZR_WEIGHTS_DIR).",
    )
    device: str = Field(
        default="auto",
        description="Torch device for the musetalk engine: `auto`, `cpu`, `cuda`, `cuda:1`.",
    )
    weights_dir: Path | None = Field(
        default=None,
        description="MuseTalk v1.5 checkpoint folder: musetalkV15/musetalk.json + unet.pth, "
        "sd-vae/, whisper/. Only the musetalk engine reads it.",
    )
    batch_size: int = Field(
        default=16, ge=1, le=256, description="Frames per UNet/VAE batch in the musetalk engine."
    )
    data_dir: Path = Field(
        default=Path("data/visualizr"),
        description="Where produced videos and the portrait cache are kept.",
    )
    characters_dir: Path = Field(
        default=Path("characters"),
        description="Folder of character folders (portrait + character.yaml), read at start-up; "
        "a folder added later is read on its first request.",
    )
    public_url: str | None = Field(
        default=None,
        description="Base of the returned file URLs; default http://{host}:{port} of this server.",
    )
    vocalizr_url: str | None = Field(
        default=None,
        description="vocalizr's base URL; its host is allowed for `audio_url` fetches.",
    )
    allowed_audio_hosts: Annotated[list[str] | None, NoDecode] = Field(
        default=None,
        description="Hosts `audio_url` may point at (JSON list or comma-separated); "
        "default localhost, 127.0.0.1, ::1 and the host of VISUALIZR_VOCALIZR_URL.",
    )
    default_fps: int = Field(
        default=25, ge=1, le=60, description="Frame rate when a request names none."
    )
    default_size: int = Field(
        default=512,
        ge=128,
        le=1024,
        description="Video width = height in pixels when a request names none.",
    )
    max_audio_s: float = Field(
        default=60.0, gt=0, description="Longest audio accepted, in seconds."
    )
    max_upload_bytes: int = Field(
        default=25_000_000, gt=0, description="Largest accepted upload or fetched file, in bytes."
    )
    max_image_pixels: int = Field(
        default=50_000_000,
        gt=0,
        description="Largest accepted portrait, in pixels (width x height); bigger is refused, "
        "smaller but large images are scaled down.",
    )
    max_queue: int = Field(
        default=8,
        ge=1,
        description="Requests queued or rendering at once; more get 503 + Retry-After.",
    )
    workers: int = Field(
        default=1, ge=1, description="Videos rendered concurrently (worker threads)."
    )
    encoder_threads: int = Field(
        default=1, ge=0, description="libx264 threads per video (0 lets x264 choose)."
    )
    retention_s: float = Field(
        default=3600.0,
        gt=0,
        description="Produced videos are deleted this many seconds after creation.",
    )
    fetch_timeout_s: float = Field(
        default=10.0, gt=0, description="Timeout for fetching `audio_url`."
    )
    ui: bool = Field(default=True, description="Mount the Gradio tab at /ui.")

    @field_validator("allowed_audio_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        # Accept a JSON list or "a,b,c" from the environment.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [host.strip() for host in text.split(",") if host.strip()]
        return value

    def audio_hosts(self) -> frozenset[str]:
        """Hosts that `audio_url` may name."""
        if self.allowed_audio_hosts is not None:
            return frozenset(host.lower().strip("[]") for host in self.allowed_audio_hosts)
        hosts = {"localhost", "127.0.0.1", "::1"}
        if self.vocalizr_url:
            vocalizr_host = urlsplit(self.vocalizr_url).hostname
            if vocalizr_host:
                hosts.add(vocalizr_host.lower())
        return frozenset(hosts)

    def base_url(self) -> str:
        """The absolute base for file URLs."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"
