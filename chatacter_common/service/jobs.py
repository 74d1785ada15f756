"""A bounded queue of jobs: work runs in worker threads, excess is refused at once."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio
import anyio.to_thread

from chatacter_common.service.errors import QueueFull
from chatacter_common.telemetry import tracer

_tracer = tracer(__name__)

T = TypeVar("T")


class JobQueue:
    """At most `max_jobs` queued + running; at most `workers` running at once."""

    def __init__(self, max_jobs: int, workers: int, what: str = "jobs") -> None:
        self.max_jobs = max_jobs
        self.workers = workers
        self.what = what
        self.depth = 0
        self._limiter = anyio.CapacityLimiter(workers)
        self._recent_job_s = 1.0  # running mean of job time, for Retry-After

    def acquire(self) -> Callable[[], None]:
        """Take a place for one job, or raise QueueFull at once (never waits).

        Returns the release function; calling it more than once is harmless.
        """
        if self.depth >= self.max_jobs:
            raise QueueFull(
                f"{self.depth} {self.what} queued or running (limit {self.max_jobs}); "
                f"retry in {self.retry_after_s()} s"
            )
        self.depth += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.depth -= 1

        return release

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a place in the queue for the duration of the block."""
        release = self.acquire()
        try:
            yield
        finally:
            release()

    async def run(self, function: Callable[[], T], work: str = "work") -> T:
        """Run blocking work in a worker thread, off the event loop.

        Traced as a `queue wait` span (until a worker takes it) and a `work` span (its run).
        """
        started = anyio.current_time()
        waiting = _tracer.start_span("queue wait", attributes={"queue.depth": self.depth})

        def in_worker() -> T:
            # The worker thread runs in a copy of the caller's context: the span is its child.
            if waiting.is_recording():
                waiting.end()
            with _tracer.start_as_current_span(work):
                return function()

        try:
            return await anyio.to_thread.run_sync(in_worker, limiter=self._limiter)
        finally:
            if waiting.is_recording():  # cancelled while queued
                waiting.end()
            elapsed = anyio.current_time() - started
            self._recent_job_s = 0.8 * self._recent_job_s + 0.2 * elapsed

    def retry_after_s(self) -> int:
        """Seconds until a place is likely free: the queue ahead, drained by the workers."""
        return max(1, math.ceil(self._recent_job_s * self.depth / self.workers))
