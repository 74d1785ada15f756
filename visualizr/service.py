"""The service's state and the one operation it offers: make a video from a request."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from visualizr.engines import load_engine
from visualizr.errors import (
    CharacterNotFound,
    EngineUnavailable,
    FetchFailed,
    HostNotAllowed,
    QueueFull,
    VisualizrError,
)
from visualizr.files import FileStore
from visualizr.geometry import FaceLocator
from visualizr.media import decode_audio
from visualizr.portraits import CharacterPortraits, Portrait, portrait_from_bytes
from visualizr.render import Renderer, VideoResult
from visualizr.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoJob:
    """What a request asks for, once its inputs are fetched: raw bytes, not yet decoded."""

    audio: bytes
    portrait: Portrait | bytes
    fps: int
    size: int


class Metrics:
    """Prometheus metrics in a registry of this app's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "visualizr_requests", "Video requests by outcome.", ["outcome"], registry=self.registry
        )
        self.render_seconds = Histogram(
            "visualizr_render_seconds",
            "Wall time to render and encode one video.",
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.video_seconds = Counter(
            "visualizr_video_seconds", "Seconds of video produced.", registry=self.registry
        )
        self.frames = Counter("visualizr_frames", "Frames produced.", registry=self.registry)
        self.queue = Gauge(
            "visualizr_queue_depth", "Requests queued or rendering.", registry=self.registry
        )


class VideoService:
    """Engine, characters, files and the bounded queue in front of the worker threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.files = FileStore(settings.data_dir / "videos")
        self.characters = CharacterPortraits(
            settings.characters_dir, max_pixels=settings.max_image_pixels
        )
        self.renderer: Renderer | None = None
        self.load_error: str | None = None
        self._limiter = anyio.CapacityLimiter(settings.workers)
        self._pending = 0
        self._pending_lock = threading.Lock()

    def load(self) -> None:
        """Load the engine and the characters (blocking; run in a thread at start-up)."""
        try:
            self.characters.discover()
            engine = load_engine(self.settings)
            locator = FaceLocator(self.settings.data_dir / "cache")
            self.renderer = Renderer(engine, locator, encoder_threads=self.settings.encoder_threads)
            log.info("visualizr ready: engine %s on %s", engine.name, engine.device)
        except Exception as error:  # any load failure is reported by /healthz, not fatal
            log.exception("engine failed to load")
            self.load_error = str(error)

    def ready_renderer(self) -> Renderer:
        """The renderer, or a 503 error that says the service is still loading or broken."""
        if self.renderer is not None:
            return self.renderer
        if self.load_error is not None:
            raise EngineUnavailable(f"the engine failed to load: {self.load_error}")
        raise EngineUnavailable(
            "the engine is still loading; retry in a few seconds", code="loading"
        )

    async def character(self, character: str) -> Portrait:
        """A character's portrait; a folder added since start-up is loaded now, off the loop."""
        try:
            return self.characters.get(character)
        except CharacterNotFound:
            return await anyio.to_thread.run_sync(self.characters.find, character)

    async def fetch(self, url: str, what: str) -> bytes:
        """GET a URL from an allow-listed host, bounded in size and time."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise HostNotAllowed(f"{what} must be an http(s) URL, got {url!r}", code="bad_url")
        allowed = self.settings.audio_hosts()
        if host not in allowed:
            raise HostNotAllowed(
                f"{what} host {host!r} is not allowed; allowed: {', '.join(sorted(allowed))} "
                "(set VISUALIZR_ALLOWED_AUDIO_HOSTS), or upload the file instead"
            )
        limit = self.settings.max_upload_bytes
        try:
            async with (
                httpx.AsyncClient(
                    timeout=self.settings.fetch_timeout_s, follow_redirects=False
                ) as client,
                client.stream("GET", url) as response,
            ):
                if response.status_code != 200:
                    raise FetchFailed(f"fetching {what} {url} answered HTTP {response.status_code}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise FetchFailed(
                            f"{what} is larger than {limit} bytes", code="too_large", status=413
                        )
                    chunks.append(chunk)
                return b"".join(chunks)
        except (httpx.HTTPError, ValueError) as error:
            raise FetchFailed(f"could not fetch {what} {url}: {error}") from None

    async def make_video(self, job: VideoJob) -> VideoResult:
        """Run one job in a worker thread, refusing it when the queue is full."""
        renderer = self.ready_renderer()
        with self._pending_lock:
            if self._pending >= self.settings.max_queue:
                self.metrics.requests.labels("busy").inc()
                raise QueueFull(
                    f"{self._pending} videos are queued or rendering (limit "
                    f"{self.settings.max_queue}); retry shortly"
                )
            self._pending += 1
            self.metrics.queue.set(self._pending)
        try:
            result = await anyio.to_thread.run_sync(
                self._render, renderer, job, limiter=self._limiter
            )
        except VisualizrError:
            self.metrics.requests.labels("rejected").inc()
            raise
        finally:
            with self._pending_lock:
                self._pending -= 1
                self.metrics.queue.set(self._pending)
        self.metrics.requests.labels("ok").inc()
        self.metrics.render_seconds.observe(result.render_s)
        self.metrics.video_seconds.inc(result.duration_s)
        self.metrics.frames.inc(result.frames)
        return result

    def _render(self, renderer: Renderer, job: VideoJob) -> VideoResult:
        audio = decode_audio(job.audio, max_seconds=self.settings.max_audio_s)
        portrait = job.portrait
        if isinstance(portrait, bytes):
            portrait = portrait_from_bytes(portrait, max_pixels=self.settings.max_image_pixels)
        return renderer.render(
            portrait, audio, fps=job.fps, size=job.size, path=self.files.new_path()
        )

    async def retain(self) -> None:
        """Delete old videos now and then, forever (a background task)."""
        period = min(60.0, max(1.0, self.settings.retention_s / 4))
        while True:
            removed = await anyio.to_thread.run_sync(
                self.files.delete_older_than, self.settings.retention_s
            )
            if removed:
                log.info("deleted %d videos past retention", removed)
            await asyncio.sleep(period)
