"""Prometheus metrics: the kit's (requests, errors, queue depth) and the speech made."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from chatacter_common.service import JobQueue, ServiceMetrics


class Metrics(ServiceMetrics):
    """The kit's metrics as `vocalizr_*`, plus synthesis time and audio produced by engine."""

    def __init__(self, jobs: JobQueue) -> None:
        super().__init__("vocalizr", jobs)
        self.synthesis_seconds = Histogram(
            "vocalizr_synthesis_seconds",
            "Wall time of one synthesis job.",
            ["engine"],
            buckets=(0.05, 0.1, 0.15, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "vocalizr_audio_seconds",
            "Seconds of audio produced.",
            ["engine"],
            registry=self.registry,
        )
