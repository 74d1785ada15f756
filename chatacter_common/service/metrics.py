"""Prometheus metrics every service has, under the same names and labels.

`<service>_requests_total{route, status}`, `<service>_errors_total{code}`,
`<service>_queue_depth`, and for its jobs `<service>_<work>_seconds{engine}` (a histogram of
wall time per job) and `<service>_<output>_seconds_total{engine}` (seconds of media produced).
One registry per app, so several apps can live in one process (the Space).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from chatacter_common.service.jobs import JobQueue


class ServiceMetrics:
    """Requests by route and status, error answers by code, jobs queued or running, and the
    time and output of the jobs by engine (`work`: what a job does, `output`: what it makes)."""

    def __init__(
        self,
        service: str,
        jobs: JobQueue,
        *,
        work: str,
        output: str,
        buckets: tuple[float, ...],
    ) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self.requests = Counter(
            f"{service}_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            f"{service}_errors", "Error answers by code.", ["code"], registry=self.registry
        )
        self.queue_depth = Gauge(
            f"{service}_queue_depth", f"{jobs.what} queued or running.", registry=self.registry
        )
        self.queue_depth.set_function(lambda: jobs.depth)
        self.work_seconds = Histogram(
            f"{service}_{work}_seconds",
            f"Wall time of one {work} job.",
            ["engine"],
            buckets=buckets,
            registry=self.registry,
        )
        self.output_seconds = Counter(
            f"{service}_{output}_seconds",
            f"Seconds of {output} produced.",
            ["engine"],
            registry=self.registry,
        )

    def count_job(self, engine: str, work_s: float, output_s: float) -> None:
        """One job done (or a stream ended): its wall time and the media it made."""
        self.work_seconds.labels(engine).observe(work_s)
        self.output_seconds.labels(engine).inc(output_s)

    def count_error(self, code: str) -> None:
        self.errors.labels(code).inc()

    def render(self) -> Response:
        """The Prometheus text exposition of this app's metrics."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def count_requests(app: FastAPI, metrics: ServiceMetrics) -> None:
    """Count every answer of `app` by its route's template (not the raw path) and status."""

    @app.middleware("http")
    async def counting(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.requests.labels(
            getattr(route, "path", "unmatched"), str(response.status_code)
        ).inc()
        return response
