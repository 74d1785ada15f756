"""The routes every service has, `/healthz` and `/metrics`, on a router of the kit's own.

Handlers get the service's state through dependencies that read `app.state.health` and
`app.state.metrics`; a test overrides them (`app.dependency_overrides[get_health]`).
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from chatacter_common.service.health import Health
from chatacter_common.service.metrics import ServiceMetrics


def get_health(request: Request) -> Health:
    """The app's `Health` (set as `app.state.health` by its factory)."""
    return cast(Health, request.app.state.health)


def get_metrics(request: Request) -> ServiceMetrics:
    """The app's metrics (set as `app.state.metrics` by its factory)."""
    return cast(ServiceMetrics, request.app.state.metrics)


HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"description": "Loading (with Retry-After), or the engine failed to load."}
}

ops_router = APIRouter()


@ops_router.get("/healthz", responses=HEALTH_RESPONSES)
async def healthz(health: Annotated[Health, Depends(get_health)]) -> JSONResponse:
    """200 once the engine is loaded; 503 while loading (or if loading failed)."""
    return health.answer()


@ops_router.get("/metrics", response_class=Response)
async def metrics(metrics: Annotated[ServiceMetrics, Depends(get_metrics)]) -> Response:
    """Prometheus metrics."""
    return metrics.render()
