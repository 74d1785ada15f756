"""Prometheus metrics: the kit's, named for speech (`vocalizr_synthesis_seconds`, ...)."""

from __future__ import annotations

from chatacter_common.service import JobQueue, ServiceMetrics


class Metrics(ServiceMetrics):
    """Requests, errors, queue depth; synthesis time and audio produced, by engine."""

    def __init__(self, jobs: JobQueue) -> None:
        super().__init__(
            "vocalizr",
            jobs,
            work="synthesis",
            output="audio",
            buckets=(0.05, 0.1, 0.15, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
        )
