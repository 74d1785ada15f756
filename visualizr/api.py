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
    BearerAuth,
    BodyLimit,
    count_requests,
    install_error_handlers,
    ops_router,
    parse_keys,
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
    app = FastAPI(
        title="visualizr",
        version="1.0",
        summary="Talking-head videos from speech audio and a portrait.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.health = service.health
    app.state.metrics = service.metrics

    install_error_handlers(
        app, retry_after_s=service.jobs.retry_after_s, on_error=service.metrics.count_error
    )
    count_requests(app, service.metrics)
    app.include_router(routes.router)
    app.include_router(ops_router)

    if settings.ui:
        from visualizr.ui import mount_ui

        mount_ui(app, service)
    # Outermost first: a caller without the key is refused before its body is read at all.
    app.add_middleware(
        BodyLimit,
        max_bytes=2 * settings.max_upload_bytes + FORM_OVERHEAD,
        setting="VISUALIZR_MAX_UPLOAD_BYTES",
    )
    app.add_middleware(BearerAuth, keys=parse_keys(settings.api_key), setting="VISUALIZR_API_KEY")
    return app
