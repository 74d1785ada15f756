"""The service's state and the one operation it offers: make a video from a request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from chatacter_common.service import JobQueue
from visualizr.engines import load_engine
from visualizr.errors import (
    CharacterNotFound,
    EngineUnavailable,
    QueueFull,
    VisualizrError,
)
from visualizr.fetch import fetch
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
        self.jobs = JobQueue(settings.max_queue, settings.workers, "videos")
        self.metrics.queue.set_function(lambda: self.jobs.depth)

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
        """GET a URL from an allow-listed address, bounded in decoded size and in time."""
        return await fetch(url, what, self.settings)

    @contextlib.asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """A place in the queue for one request, from its first fetched byte to its video.

        Fetching counts: slow `audio_url` bodies hold places too, so they meet the bound (503).
        """
        try:
            release = self.jobs.acquire()
        except QueueFull:
            self.metrics.requests.labels("busy").inc()
            raise
        try:
            yield
        finally:
            release()

    async def make_video(self, job: VideoJob) -> VideoResult:
        """Run one job in a worker thread, refusing it when the queue is full."""
        async with self.admitted():
            return await self.render(job)

    async def render(self, job: VideoJob) -> VideoResult:
        """Run one admitted job in a worker thread (the caller holds its queue place)."""
        renderer = self.ready_renderer()
        try:
            result = await self.jobs.run(partial(self._render, renderer, job))
        except VisualizrError:
            self.metrics.requests.labels("rejected").inc()
            raise
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
