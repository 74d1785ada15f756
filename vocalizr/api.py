"""The HTTP edge: the app factory. It builds the service, puts it on `app.state` for the
routers' dependencies, and runs the engine's loading and the retention sweeps in the background.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import anyio
import anyio.to_thread
from fastapi import FastAPI

from chatacter_common.service import (
    JobQueue,
    create_service_app,
    guard,
    purge_period_s,
    purge_periodically,
)
from chatacter_common.storage import open_storage
from vocalizr import openai_routes, routes
from vocalizr.engines import create_engine
from vocalizr.files import FileStore
from vocalizr.metrics import Metrics
from vocalizr.service import SpeechService
from vocalizr.settings import Settings
from vocalizr.transcription import TranscriptionService, create_transcriber
from vocalizr.voices import VoiceRegistry

# Room for multipart boundaries and headers around an upload of the largest allowed size.
UPLOAD_OVERHEAD = 64 * 1024


def create_service(settings: Settings) -> SpeechService:
    """The speech service the settings describe: engine (built, not loaded), voices, files."""
    engine = create_engine(settings)
    jobs = JobQueue(settings.max_queue, settings.workers, "speech jobs")
    voices = VoiceRegistry(
        engine,
        settings.characters_dir,
        settings.data_dir / "voices",
        settings.min_reference_s,
        settings.max_reference_s,
        settings.voice_retention_s,
    )
    folder = settings.data_dir / "files"
    storage = open_storage(
        settings.media_store,
        setting="VOCALIZR_MEDIA_STORE",
        directory=folder,
        namespace="vocalizr",
    )
    files = FileStore(folder, storage)
    return SpeechService(engine, voices, files, jobs, Metrics(jobs), settings.max_text_chars)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the engine in a worker thread; delete expired files and voices until shutdown."""
    service: SpeechService = app.state.service
    settings: Settings = app.state.settings
    purges: list[Callable[[], object]] = [
        partial(service.files.purge, settings.retention_s),
        service.voices.purge_uploads,
    ]
    period = purge_period_s(settings.retention_s, settings.voice_retention_s)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(anyio.to_thread.run_sync, service.load)
        tasks.start_soon(purge_periodically, purges, period)
        yield
        tasks.cancel_scope.cancel()


def create_app(settings: Settings) -> FastAPI:
    """Build the app; the engine loads in the background once it starts (see /healthz)."""
    service = create_service(settings)
    app = create_service_app(
        title="vocalizr",
        version="1",
        description="Text to speech in a character's cloned voice.",
        lifespan=lifespan,
        settings=settings,
        service=service,
        routers=[routes.router, openai_routes.router],
    )
    app.state.transcription = TranscriptionService(
        create_transcriber(settings), service.jobs, settings.stt_max_s
    )
    if settings.ui:
        from vocalizr.ui import mount_ui

        app = mount_ui(app, service)
    return guard(
        app,
        max_body_bytes=settings.max_upload_bytes + UPLOAD_OVERHEAD,
        body_setting="VOCALIZR_MAX_UPLOAD_BYTES",
        api_key=settings.api_key,
        key_setting="VOCALIZR_API_KEY",
    )
