"""chattr's Prometheus metrics: what each turn took and how it ended.

`chattr_turns_total{outcome}`, `chattr_turn_seconds{stage}` (the time from the turn's start to
its first text, first audio, first video and full reply), `chattr_turn_errors_total{part}`
(the part that failed: `vocalizr`, `visualizr`, `memory`, `knowledge`, ...),
`chattr_turns_in_flight` (conversations with a turn running now) and
`chattr_step_seconds{step}` (memory read and write, knowledge retrieval). One registry per
service, so several apps can live in one process (the tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from chattr.reply import TurnState

# The timings a turn notes (`TurnState.timings`) that are stages of the reply, by their label.
STAGES = {
    "first_text_s": "first_text",
    "first_audio_s": "first_audio",
    "first_video_s": "first_video",
    "total_s": "full_reply",
}
# ...and those that are steps before or after the LLM.
STEPS = {"memory_s": "memory_read", "knowledge_s": "knowledge", "memory_write_s": "memory_write"}

# A reply's first text comes in well under a second; its full video can take a minute.
STAGE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0, 90.0)
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class TurnMetrics:
    """The counters and histograms of one chattr app's turns."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.turns = Counter(
            "chattr_turns",
            "Turns by how they ended: done, refused, failed, stopped.",
            ["outcome"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "chattr_turn_seconds",
            "Seconds from a turn's start to a stage of its reply.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "chattr_turn_errors",
            "Failures a turn showed, by the part that failed (vocalizr, visualizr, memory, ...).",
            ["part"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "chattr_turns_in_flight",
            "Turns running now (one per active conversation).",
            registry=self.registry,
        )
        self.step_seconds = Histogram(
            "chattr_step_seconds",
            "Seconds of a turn's steps around the LLM: memory read and write, knowledge.",
            ["step"],
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )

    @contextmanager
    def running(self) -> Iterator[None]:
        """A turn is in flight while the block runs."""
        self.in_flight.inc()
        try:
            yield
        finally:
            self.in_flight.dec()

    def count_turn(self, outcome: str, state: TurnState | None) -> None:
        """A turn ended (`outcome` as `tracing.turn_outcome` says): what it took, what failed."""
        self.turns.labels(outcome).inc()
        if state is None:
            return
        for name, seconds in state.timings.items():
            if name in STAGES:
                self.stage_seconds.labels(STAGES[name]).observe(seconds)
            elif name in STEPS:
                self.step_seconds.labels(STEPS[name]).observe(seconds)
        for error in state.errors:
            self.errors.labels(error.service).inc()

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text exposition, and its media type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
