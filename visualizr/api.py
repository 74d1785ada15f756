"""The HTTP edge: the app factory. It builds the service, puts it on `app.state` for the
routers' dependencies, and runs the engine's loading and the retention sweep in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from functools import partial

import anyio
import anyio.to_thread
from fastapi import FastAPI

from chatacter_common.service import (
    create_service_app,
    guard,
    purge_period_s,
    purge_periodically,
)
from visualizr import routes
from visualizr.service import VideoService
from visualizr.settings import Settings

# Room for multipart boundaries and form fields around the two files of a request.
FORM_OVERHEAD = 65536


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the engine in a worker thread; delete expired videos until shutdown."""
    service: VideoService = app.state.service
    retention_s = service.settings.retention_s
    loading = asyncio.create_task(anyio.to_thread.run_sync(service.load))
    retention = asyncio.create_task(
        purge_periodically([partial(service.files.purge, retention_s)], purge_period_s(retention_s))
    )
    try:
        yield
    finally:
        retention.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await retention
        await asyncio.shield(loading)
        if service.renderer is not None:
            service.renderer.locator.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the visualizr app; the engine loads in the background at start-up."""
    settings = settings or Settings()
    service = VideoService(settings)
    app = create_service_app(
        title="visualizr",
        version="1.0",
        description="Talking-head videos from speech audio and a portrait.",
        lifespan=lifespan,
        settings=settings,
        service=service,
        routers=[routes.router],
    )
    if settings.ui:
        from visualizr.ui import mount_ui

        mount_ui(app, service)
    return guard(
        app,
        max_body_bytes=2 * settings.max_upload_bytes + FORM_OVERHEAD,
        body_setting="VISUALIZR_MAX_UPLOAD_BYTES",
        api_key=settings.api_key,
        key_setting="VISUALIZR_API_KEY",
    )
