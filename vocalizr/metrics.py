"""Prometheus metrics, in a registry per app so several apps can live in one process."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """Requests, errors, synthesis time, audio produced, queue depth."""

    def __init__(self, queue_depth: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vocalizr_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "vocalizr_errors", "Error answers by code.", ["code"], registry=self.registry
        )
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
        self.queue_depth = Gauge(
            "vocalizr_queue_depth", "Synthesis jobs queued or running.", registry=self.registry
        )
        self.queue_depth.set_function(queue_depth)

    def render(self) -> bytes:
        """The Prometheus text exposition of this app's metrics."""
        return generate_latest(self.registry)
