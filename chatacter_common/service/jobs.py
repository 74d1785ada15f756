"""A bounded queue of jobs: work runs in worker threads, excess is refused at once.

Jobs wait for a worker first come, first served, except that an urgent job (`run(...,
urgent=True)`: a reply's first sentence, which someone is waiting to hear) goes before every
waiting job that is not. And when every worker is busy, an urgent job stops a running job that
can be stopped (it came with a `StopSignal` and its engine honours it): that job raises
`Preempted`, waits for a worker again, ahead of the jobs that came after it, and runs again from
the start. A job is stopped at most `MAX_STOPS` times. An urgent job takes the worker of a job it
stops at once, while that run is still ending its step (ONNX Runtime ends a run between two
operators, up to tens of milliseconds later): for that moment one more thread runs than there are
workers.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import anyio.to_thread
from opentelemetry import trace

from chatacter_common.service.errors import QueueFull
from chatacter_common.telemetry import tracer

log = logging.getLogger(__name__)
_tracer = tracer(__name__)

T = TypeVar("T")

# How often one job may be stopped for urgent ones. Each stop throws away the work of one run
# (Piper: one sentence, a few hundred ms on a CPU), and a job stopped runs again before every job
# that came after it; after MAX_STOPS it is not stopped again, so it ends within MAX_STOPS + 1 of
# its own runs plus the urgent jobs ahead of it, however many keep coming. Three: in a scene every
# later speaker's first sentence may come while the same earlier sentence runs (chattr lets four
# members answer a message by default, CHATTR_SCENE_MAX_REPLIES), and once was measured too few:
# the third speaker's first sentence waited for the second run of the first speaker's sentence
# the second speaker had stopped (bench/scene.py, 2 cores).
MAX_STOPS = 3


# The event on the span of a run stopped for an urgent job.
STOPPED_EVENT = "stopped for an urgent job"


class Preempted(Exception):
    """A job stopped because its StopSignal was raised: the queue runs it again."""


class StopSignal:
    """How the queue asks a running job to stop, so that an urgent one has its worker.

    The queue raises it (`request`, from the event loop's thread) while the job runs in a worker
    thread. The job says how its work of the moment is stopped (`stopping_with`; Piper: ONNX
    Runtime's `RunOptions.terminate`) and raises Preempted once stopped. Work outside such a block
    is not stopped: the job then finishes as usual, so a request is only a request.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requested = False
        self._stop_work: Callable[[], None] | None = None
        self.stops = 0  # times the job was stopped (and run again)
        # Set while the job's work can be stopped: a test waits on it to stop a synthesis midway.
        self.stoppable = threading.Event()

    @property
    def requested(self) -> bool:
        return self._requested

    def request(self) -> bool:
        """Ask the job to stop; its work of the moment is stopped now, or as it starts. Whether
        it was stopped now (it was in a stoppable block), and so ends without further work."""
        with self._lock:
            self._requested = True
            stop_work = self._stop_work
        if stop_work is not None:
            stop_work()
        return stop_work is not None

    @contextmanager
    def stopping_with(self, stop_work: Callable[[], None]) -> Iterator[None]:
        """While the block runs, a request calls `stop_work` (from another thread); one made
        already calls it at once."""
        with self._lock:
            self._stop_work = stop_work
            requested = self._requested
        if requested:
            stop_work()
        self.stoppable.set()
        try:
            yield
        finally:
            self.stoppable.clear()
            with self._lock:
                self._stop_work = None

    def stopped(self) -> None:
        """The job stopped and will run again: count it, and clear the request."""
        with self._lock:
            self._requested = False
            self.stops += 1


@dataclass(eq=False)
class RunningJob:
    """A job on a worker: whether it is urgent, and how it is stopped (None: it cannot be)."""

    urgent: bool
    stop: StopSignal | None
    started: float
    # Stopped in its stoppable work, its worker handed on to an urgent job at once.
    handed_over: bool = False

    @property
    def stoppable(self) -> bool:
        """Whether an urgent job may stop it now."""
        stop = self.stop
        return (
            not self.urgent and stop is not None and not stop.requested and (stop.stops < MAX_STOPS)
        )


@dataclass(eq=False)
class _Waiter:
    rank: tuple[int, int]  # (0 if urgent else 1, arrival): urgent first, then first come
    admitted: anyio.Event = field(default_factory=anyio.Event)
    handed: bool = False  # given a worker
    gone: bool = False  # cancelled while waiting

    @property
    def urgent(self) -> bool:
        return self.rank[0] == 0

    def __lt__(self, other: _Waiter) -> bool:
        return self.rank < other.rank


class JobQueue:
    """At most `max_jobs` queued + running; at most `workers` running at once; urgent jobs
    first, and they stop a running job that can be stopped (see the module's docstring)."""

    def __init__(self, max_jobs: int, workers: int, what: str = "jobs") -> None:
        self.max_jobs = max_jobs
        self.workers = workers
        self.what = what
        self.depth = 0
        self._free = workers
        self._waiting: list[_Waiter] = []  # a heap
        self._running: list[RunningJob] = []
        self._arrivals = itertools.count()
        # A worker handed over runs on with the urgent job until its run has ended: at most one
        # such thread more per worker.
        self._threads = anyio.CapacityLimiter(2 * workers)
        self._recent_job_s = 1.0  # running mean of job time, for Retry-After

    @property
    def running(self) -> tuple[RunningJob, ...]:
        """The jobs on a worker now."""
        return tuple(self._running)

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

    async def run(
        self,
        function: Callable[[], T],
        work: str = "work",
        *,
        urgent: bool = False,
        stop: StopSignal | None = None,
    ) -> T:
        """Run blocking work in a worker thread, off the event loop. `urgent`: before the jobs
        that are not; `stop`: how an urgent job stops this one (`function` raises Preempted once
        stopped, and is run again).

        Traced as a `queue wait` span (until a worker takes it) and a `work` span (its run), each
        once more for a run again.
        """
        started = anyio.current_time()
        rank = (0 if urgent else 1, next(self._arrivals))
        try:
            while True:
                waiting = _tracer.start_span(
                    "queue wait", attributes={"queue.depth": self.depth, "queue.urgent": urgent}
                )
                try:
                    await self._take_worker(_Waiter(rank))
                except BaseException:
                    waiting.end()  # cancelled while queued
                    raise
                job = RunningJob(urgent, stop, anyio.current_time())
                self._running.append(job)
                try:
                    return await anyio.to_thread.run_sync(
                        in_worker(function, work, waiting), limiter=self._threads
                    )
                except Preempted:
                    if stop is None:
                        raise
                    stop.stopped()
                    log.info("%s: one stopped for an urgent one; it runs again", self.what)
                finally:
                    if waiting.is_recording():
                        waiting.end()
                    self._running.remove(job)
                    if not job.handed_over:  # else an urgent job has its worker already
                        self._free += 1
                    self._admit()
        finally:
            elapsed = anyio.current_time() - started
            self._recent_job_s = 0.8 * self._recent_job_s + 0.2 * elapsed

    async def _take_worker(self, waiter: _Waiter) -> None:
        heapq.heappush(self._waiting, waiter)
        self._admit()
        if waiter.urgent and not waiter.handed:
            self._make_room()
        try:
            await waiter.admitted.wait()
        except BaseException:
            if waiter.handed:  # given a worker as it was cancelled: pass the worker on
                self._free += 1
                self._admit()
            else:
                waiter.gone = True
            raise

    def _admit(self) -> None:
        """Hand free workers to waiters: urgent ones first, then by arrival."""
        while self._free > 0 and self._waiting:
            waiter = heapq.heappop(self._waiting)
            if waiter.gone:
                continue
            self._free -= 1
            waiter.handed = True
            waiter.admitted.set()

    def _make_room(self) -> None:
        """Stop running jobs until each waiting urgent job has a worker coming: the youngest
        first, which loses the least work. A job stopped in its stoppable work hands its worker
        over at once; one asked outside it stops as its next such work starts, and frees its
        worker then."""
        urgent = sum(1 for waiter in self._waiting if waiter.urgent and not waiter.gone)
        coming = sum(
            1
            for job in self._running
            if job.stop is not None and job.stop.requested and not job.handed_over
        )
        candidates = sorted(
            (job for job in self._running if job.stoppable), key=lambda job: -job.started
        )
        for job in candidates[: max(0, urgent - coming)]:
            assert job.stop is not None
            if job.stop.request():
                job.handed_over = True
                self._free += 1
        self._admit()

    def retry_after_s(self) -> int:
        """Seconds until a place is likely free: the queue ahead, drained by the workers."""
        return max(1, math.ceil(self._recent_job_s * self.depth / self.workers))


def in_worker(function: Callable[[], T], work: str, waiting: trace.Span) -> Callable[[], T]:
    """`function` as a worker thread runs it: the `queue wait` span ended, inside a `work` span.
    The worker thread runs in a copy of the caller's context, so the span is its child."""

    def run() -> T:
        if waiting.is_recording():
            waiting.end()
        # A run stopped for an urgent job is no failure (it runs again): its span says it was
        # stopped, with no error status; any other exception is recorded as the SDK would.
        with _tracer.start_as_current_span(
            work, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                return function()
            except Preempted:
                span.set_attribute("job.stopped", True)
                span.add_event(STOPPED_EVENT)
                raise
            except BaseException as exc:
                span.record_exception(exc)
                span.set_status(
                    trace.Status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
                )
                raise

    return run
