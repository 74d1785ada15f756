"""The shape every service app has, built once here.

`create_service_app` makes the FastAPI app with the service's state where the routers'
dependencies read it (`app.state.settings`, `.service`, `.health`, `.metrics`), the one error
handling, request counting, the kit's `/healthz` and `/metrics`, and the service's routers.
`guard` then wraps it in the body limit and the bearer keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from fastapi import APIRouter, FastAPI
from pydantic import SecretStr

from chatacter_common.blas import one_blas_thread
from chatacter_common.service.auth import BearerAuth, parse_keys
from chatacter_common.service.errors import install_error_handlers
from chatacter_common.service.health import Health
from chatacter_common.service.jobs import JobQueue
from chatacter_common.service.limits import BodyLimit
from chatacter_common.service.metrics import ServiceMetrics, count_requests
from chatacter_common.service.routes import ops_router
from chatacter_common.telemetry import configure_tracing

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class Service(Protocol):
    """What the kit reads of a service: its health, its metrics and its job queue."""

    @property
    def health(self) -> Health: ...

    @property
    def metrics(self) -> ServiceMetrics: ...

    @property
    def jobs(self) -> JobQueue: ...


def create_service_app(
    *,
    title: str,
    version: str,
    description: str,
    lifespan: Lifespan,
    settings: object,
    service: Service,
    routers: Sequence[APIRouter],
) -> FastAPI:
    """A service's app: its state, the kit's error answers, metrics and ops routes, its routers.
    BLAS runs on one thread from here on (`blas.py`)."""
    one_blas_thread()
    app = FastAPI(title=title, version=version, description=description, lifespan=lifespan)
    app.state.settings = settings
    app.state.service = service
    app.state.health = service.health
    app.state.metrics = service.metrics
    install_error_handlers(
        app, retry_after_s=service.jobs.retry_after_s, on_error=service.metrics.count_error
    )
    count_requests(app, service.metrics)
    # FastAPI traces each request itself (a child of the caller's `traceparent`) once a
    # provider is installed: the service's job spans hang under it.
    configure_tracing(service.metrics.service)
    app.include_router(ops_router)
    for router in routers:
        app.include_router(router)
    return app


def guard(
    app: FastAPI,
    *,
    max_body_bytes: int,
    body_setting: str,
    api_key: SecretStr | None,
    key_setting: str,
) -> FastAPI:
    """Wrap the app in the body limit, and that in the bearer keys: a caller without the key
    is refused before its body is read at all."""
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, setting=body_setting)
    app.add_middleware(BearerAuth, keys=parse_keys(api_key), setting=key_setting)
    return app
