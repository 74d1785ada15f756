"""Running chattr: the media services (remote or started here), then the web app under uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from chattr.app import create_app, create_service
from chattr.settings import Settings

log = logging.getLogger(__name__)


def serve(settings: Settings, *, media: bool = True) -> None:
    """Start everything and serve until interrupted."""
    service = create_service(settings)
    app = create_app(settings, service)
    log.info("chattr on http://%s:%d", settings.host, settings.port)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
