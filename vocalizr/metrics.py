"""Prometheus metrics: the kit's, named for speech (`vocalizr_synthesis_seconds`, ...), and the
syntheses stopped for a reply's first sentence (`vocalizr_preemptions_total`)."""

from __future__ import annotations

from prometheus_client import Counter

from chatacter_common.service import JobQueue, ServiceMetrics


class Metrics(ServiceMetrics):
    """Requests, errors, queue depth; synthesis time and audio produced, by engine; preemptions."""

    def __init__(self, jobs: JobQueue) -> None:
        super().__init__(
            "vocalizr",
            jobs,
            work="synthesis",
            output="audio",
            buckets=(0.05, 0.1, 0.15, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
        )
        self.preemptions = Counter(
            "vocalizr_preemptions",
            "Syntheses stopped so that a reply's first sentence ran first; each ran again.",
            ["engine"],
            registry=self.registry,
        )

    def count_preemptions(self, engine: str, times: int = 1) -> None:
        """A synthesis was stopped `times` times (and run again each time)."""
        self.preemptions.labels(engine).inc(times)
