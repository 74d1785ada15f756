"""The routes every service has, the probes and `/metrics`, on a router of the kit's own.

Probes: `/livez` (200 while the process serves: restart it when this fails), `/readyz` (200 once
the engine is loaded, 503 while it loads or when loading failed: send it no work until then) and
`/healthz` (the same answer as `/readyz`, kept for what already polls it). Handlers get the
service's state through dependencies that read `app.state`; a test overrides them
(`app.dependency_overrides[get_health]`).
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from chatacter_common.service.health import Health
from chatacter_common.service.metrics import ServiceMetrics
from chatacter_common.service.settings import ServiceSettings


def get_health(request: Request) -> Health:
    """The app's `Health` (set as `app.state.health` by its factory)."""
    return cast(Health, request.app.state.health)


def get_metrics(request: Request) -> ServiceMetrics:
    """The app's metrics (set as `app.state.metrics` by its factory)."""
    return cast(ServiceMetrics, request.app.state.metrics)


def files_base(request: Request) -> str:
    """The base of the file URLs in this request's answer (`ServiceSettings.files_base`)."""
    settings = cast(ServiceSettings, request.app.state.settings)
    return settings.files_base(str(request.base_url))


HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"description": "Loading (with Retry-After), or the engine failed to load."}
}

ops_router = APIRouter()


@ops_router.get("/livez")
async def livez() -> dict[str, str]:
    """200 while the process serves, whether or not its engine is loaded."""
    return {"status": "ok"}


@ops_router.get("/readyz", responses=HEALTH_RESPONSES)
async def readyz(health: Annotated[Health, Depends(get_health)]) -> JSONResponse:
    """200 once the engine is loaded; 503 while loading (or if loading failed)."""
    return health.answer()


@ops_router.get("/healthz", responses=HEALTH_RESPONSES)
async def healthz(health: Annotated[Health, Depends(get_health)]) -> JSONResponse:
    """200 once the engine is loaded; 503 while loading (or if loading failed), as `/readyz`."""
    return health.answer()


@ops_router.get("/metrics", response_class=Response)
async def metrics(metrics: Annotated[ServiceMetrics, Depends(get_metrics)]) -> Response:
    """Prometheus metrics."""
    return metrics.render()
