"""visualizr's settings, read once from the environment (prefix VISUALIZR_) or a .env file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from chatacter_common.service.settings import ByteCount, Port, QueueBound, ServiceSettings


class Settings(ServiceSettings):
    """Every knob of the talking-head service; the README's table is generated from these. The
    fields both services have (address, public URL, folders, queue, retention, keys, the tab)
    are `ServiceSettings`'."""

    model_config = SettingsConfigDict(env_prefix="VISUALIZR_")

    port: Port = Field(default=8002, description="Port the HTTP server listens on.")
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
    max_upload_bytes: ByteCount = Field(
        default=25_000_000, description="Largest accepted upload or fetched file, in bytes."
    )
    max_queue: QueueBound = Field(
        default=8,
        description="Requests queued or rendering at once (fetching their inputs included); "
        "more get 503 `queue_full` with Retry-After.",
    )
    max_image_pixels: int = Field(
        default=50_000_000,
        gt=0,
        description="Largest accepted portrait, in pixels (width x height); bigger is refused, "
        "smaller but large images are scaled down.",
    )
    encoder_threads: int = Field(
        default=1, ge=0, description="libx264 threads per video (0 lets x264 choose)."
    )
    first_speech_file: Path | None = Field(
        default=None,
        description="While this file exists, a video waits before its work and between two "
        "frames: another program on the same cores (chattr) creates it while a reply's first "
        "sentence is being spoken, so that speech goes first. chattr sets it for the visualizr "
        "it starts itself; unset: renders never wait.",
    )
    first_speech_wait_s: float = Field(
        default=1.0,
        ge=0,
        description="The longest a video waits in all for first sentences "
        "(VISUALIZR_FIRST_SPEECH_FILE): a file left behind, or a steady stream of first "
        "sentences, delays each video by at most this.",
    )
    fetch_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Deadline for fetching `audio_url` (or a portrait URL), the whole body "
        "included: a slow body is cut off at it.",
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
