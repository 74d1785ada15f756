"""visualizr's settings, read once from the environment (prefix VISUALIZR_) or a .env file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from chatacter_common.storage import MediaStoreSettings


class Settings(MediaStoreSettings):
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
    vocalizr_url: str = Field(
        default="http://127.0.0.1:8001",
        description="vocalizr's base URL (default: vocalizr's own default address); its host "
        "and port are where `audio_url` may point unless VISUALIZR_ALLOWED_AUDIO_HOSTS says else.",
    )
    vocalizr_api_key: SecretStr | None = Field(
        default=None,
        description="vocalizr's bearer key (its VOCALIZR_API_KEY), sent when fetching audio from "
        "VISUALIZR_VOCALIZR_URL; never sent to other hosts.",
    )
    allowed_audio_hosts: Annotated[list[str] | None, NoDecode] = Field(
        default=None,
        description="`host:port` pairs that `audio_url` and portrait URLs may point at (JSON list "
        "or comma-separated, e.g. `vocalizr:8001`); default: the host and port of "
        "VISUALIZR_VOCALIZR_URL (with 127.0.0.1, localhost and ::1 alike when it is local).",
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
        default=10.0,
        gt=0,
        description="Deadline for fetching `audio_url` (or a portrait URL), the whole body "
        "included: a slow body is cut off at it.",
    )
    ui: bool = Field(default=True, description="Mount the Gradio tab at /ui.")
    api_key: SecretStr | None = Field(
        default=None,
        description="Bearer key(s), comma-separated: when set, every route but `/healthz` and "
        "`/files/<id>` needs `Authorization: Bearer <key>`.",
    )

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

    @field_validator("allowed_audio_hosts")
    @classmethod
    def _need_ports(cls, value: list[str] | None) -> list[str] | None:
        for entry in value or []:
            if split_address(entry) is None:
                raise ValueError(
                    f"{entry!r} is not host:port; name the port too, e.g. vocalizr:8001"
                )
        return value

    def audio_addresses(self) -> frozenset[tuple[str, int]]:
        """The (host, port) pairs that `audio_url` may name."""
        if self.allowed_audio_hosts is not None:
            pairs = (split_address(entry) for entry in self.allowed_audio_hosts)
            return frozenset(pair for pair in pairs if pair is not None)
        return self.vocalizr_addresses()

    def vocalizr_addresses(self) -> frozenset[tuple[str, int]]:
        """vocalizr's own (host, port), with every loopback name alike when it is local."""
        address = url_address(self.vocalizr_url)
        if address is None:
            return frozenset()
        host, port = address
        if host in LOOPBACK:
            return frozenset((name, port) for name in LOOPBACK)
        return frozenset({address})

    def is_vocalizr(self, url: str) -> bool:
        """Whether `url` is on vocalizr's own address (the only place its key is sent)."""
        return url_address(url) in self.vocalizr_addresses()

    def base_url(self) -> str:
        """The absolute base for file URLs."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_PORTS = {"http": 80, "https": 443}


def split_address(entry: str) -> tuple[str, int] | None:
    """`host:port` or `[v6]:port` as (lowercase host, port); None without a valid port."""
    parts = urlsplit(f"//{entry.strip()}")
    try:
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.hostname.lower(), port


def url_address(url: str) -> tuple[str, int] | None:
    """An http(s) URL's (host, port), the scheme's default port when it names none."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        return None
    return parts.hostname.lower(), port
