"""The service's state and the one operation it offers: make a video from a request."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

import anyio
from prometheus_client import Counter

from chatacter_common.first_speech import FirstSpeechPause
from chatacter_common.service import (
    EngineNotReady,
    FileStore,
    Health,
    JobQueue,
    ServiceMetrics,
)
from chatacter_common.storage import open_storage
from visualizr.engines import load_engine
from visualizr.errors import CharacterNotFound, EngineUnavailable, VisualizrError
from visualizr.expressions import NEUTRAL_CUE, ExpressionCue
from visualizr.fetch import fetch
from visualizr.geometry import PREPARED_FACES_DIR, FaceLocator
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
    cue: ExpressionCue = NEUTRAL_CUE
    # The character whose `expressions/` sprite for the cue's label stands in for the portrait
    # (None: no expression asked, or an uploaded or fetched portrait, which has no sprites).
    character: str | None = None


class Metrics(ServiceMetrics):
    """The kit's metrics named for video (`visualizr_render_seconds`, ...), and frames."""

    def __init__(self, jobs: JobQueue) -> None:
        super().__init__(
            "visualizr",
            jobs,
            work="render",
            output="video",
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
        )
        self.frames = Counter(
            "visualizr_frames", "Frames produced.", ["engine"], registry=self.registry
        )


class VideoService:
    """Engine, characters, files and the bounded queue in front of the worker threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        folder = settings.data_dir / "videos"
        storage = open_storage(
            settings.media_store,
            setting="VISUALIZR_MEDIA_STORE",
            directory=folder,
            namespace="visualizr",
        )
        self.files = FileStore(folder, ".mp4", what="videos", storage=storage)
        self.characters = CharacterPortraits(
            settings.characters_dir, max_pixels=settings.max_image_pixels
        )
        self.renderer: Renderer | None = None
        # Each video's waits while chattr, on the same cores, speaks a first sentence.
        self.first_speech = (
            FirstSpeechPause(settings.first_speech_file, settings.first_speech_wait_s)
            if settings.first_speech_file is not None
            else None
        )
        self.health = Health(retry_after_s=2)
        self.jobs = JobQueue(settings.max_queue, settings.workers, "videos")
        self.metrics = Metrics(self.jobs)

    @property
    def load_error(self) -> str | None:
        """Why loading failed (server paths taken out), or None."""
        return self.health.load_error

    def load(self) -> None:
        """Load the engine and the characters (blocking; run in a thread at start-up). A failure
        is kept for /healthz and the 503s, not raised."""
        if self.health.load(self._load, f"the {self.settings.engine} engine failed to load"):
            log.info("visualizr ready: engine %s on %s", self.health.engine, self.health.device)
            self.prepare_portraits()

    def prepare_portraits(self) -> None:
        """Prepare each character's portrait at the default size now, once ready: a cold
        start's first video otherwise waits for it (the face model's own start, the face
        located, the engine's fields: about 0.5 s on a CPU). A request for a portrait being
        prepared waits for that one preparation; a failure is the request's to meet again."""
        renderer = self.renderer
        if renderer is None:
            return
        started = time.perf_counter()
        for character in self.characters.ids():
            try:
                renderer.prepare(self.characters.get(character), self.settings.default_size)
            except Exception as exc:
                log.warning("character %s: portrait not prepared ahead: %s", character, exc)
        log.info("portraits prepared in %.1f s", time.perf_counter() - started)

    def _load(self) -> tuple[str, str]:
        self.characters.discover()
        engine = load_engine(self.settings)
        locator = FaceLocator(self.settings.data_dir / "cache", PREPARED_FACES_DIR)
        self.renderer = Renderer(engine, locator, encoder_threads=self.settings.encoder_threads)
        return engine.name, engine.device

    def ready_renderer(self) -> Renderer:
        """The renderer, or a 503 error that says the service is still loading or broken."""
        if self.renderer is not None:
            return self.renderer
        if self.load_error is not None:
            raise EngineUnavailable(self.load_error)
        raise EngineNotReady("the engine is still loading; retry in a few seconds")

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
        async with self.jobs.slot():
            yield

    async def make_video(self, job: VideoJob) -> VideoResult:
        """Run one job in a worker thread, refusing it when the queue is full."""
        async with self.admitted():
            return await self.render(job)

    async def render(self, job: VideoJob) -> VideoResult:
        """Run one admitted job in a worker thread (the caller holds its queue place)."""
        renderer = self.ready_renderer()
        # Rendering and encoding interleave (frames are encoded as they are made): one span.
        result = await self.jobs.run(partial(self._render, renderer, job), work="render and encode")
        engine = renderer.engine.name
        self.metrics.count_job(engine, result.render_s, result.duration_s)
        self.metrics.frames.labels(engine).inc(result.frames)
        return result

    def _render(self, renderer: Renderer, job: VideoJob) -> VideoResult:
        # While a first sentence is spoken on these cores, not even the audio is decoded.
        pause = self.first_speech.video() if self.first_speech is not None else None
        if pause is not None:
            pause.wait()
        audio = decode_audio(job.audio, max_seconds=self.settings.max_audio_s)
        portrait = job.portrait
        if isinstance(portrait, bytes):
            portrait = portrait_from_bytes(portrait, max_pixels=self.settings.max_image_pixels)
        image, cue = portrait, job.cue
        label = job.cue.expression.label
        if job.character is not None:
            try:
                sprite = self.characters.sprite(job.character, label)
            except VisualizrError as error:
                log.warning(
                    "character %s: sprite for %s not used (%s); the portrait shows it",
                    job.character,
                    label,
                    error,
                )
            else:
                if sprite is not None:
                    # The sprite shows the expression itself: drawing it again would overdo it.
                    image, cue = sprite, NEUTRAL_CUE
        file_id, path = self.files.new_path()
        result = renderer.render(
            image, audio, fps=job.fps, size=job.size, path=path, cue=cue, pause=pause
        )
        self.files.keep(file_id)
        return result
