"""The service kit's job queue: urgent jobs before waiting ones, a running job stopped for an
urgent one and run again after it, only so often. Real queue, real worker threads, jobs
that stop as an engine does (`StopSignal.stopping_with`); each wait is on an event or on every
task being blocked, never on a clock."""

from __future__ import annotations

import threading
from contextlib import nullcontext

import anyio
import anyio.to_thread
import pytest

from chatacter_common.service import JobQueue, Preempted, StopSignal
from chatacter_common.service.jobs import MAX_STOPS

WAIT_S = 30.0  # a bound for a broken queue, never reached when it works


class Job:
    """Work that runs until told to finish; with a StopSignal, stoppable while it runs."""

    def __init__(self, name: str, stop: StopSignal | None = None) -> None:
        self.name = name
        self.stop = stop
        self.runs = 0
        self.running = threading.Event()  # a run has begun (stoppable from now on)
        self._finished = False
        self._wake = threading.Event()

    def finish(self) -> None:
        """Let this run (or the next, if none is running) end with its result."""
        self._finished = True
        self._wake.set()

    def __call__(self) -> str:
        self.runs += 1
        self._wake.clear()
        stopping = self.stop.stopping_with(self._wake.set) if self.stop else nullcontext()
        with stopping:
            self.running.set()
            if not self._finished and not self._wake.wait(WAIT_S):
                raise TimeoutError(f"{self.name} was neither finished nor stopped")
            if not self._finished:
                raise Preempted(f"{self.name} stopped")
        return self.name


async def started(job: Job) -> None:
    """Wait until the job runs in its worker thread."""
    assert await anyio.to_thread.run_sync(job.running.wait, WAIT_S)
    job.running.clear()


async def run_all(queue: JobQueue, done: list[str], *jobs: tuple[Job, bool]) -> None:
    """Start each (job, urgent) in order; each is queued before the next starts."""
    async with anyio.create_task_group() as tasks:
        for job, urgent in jobs:

            async def one(job: Job = job, urgent: bool = urgent) -> None:
                done.append(await queue.run(job, urgent=urgent, stop=job.stop))

            tasks.start_soon(one)
            await anyio.wait_all_tasks_blocked()


async def test_waiting_urgent_jobs_go_before_the_others_then_first_come_first_served() -> None:
    queue = JobQueue(8, 1)
    busy, first, second, urgent = Job("busy"), Job("first"), Job("second"), Job("urgent")
    for job in (first, second, urgent):
        job.finish()
    done: list[str] = []
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run_all, queue, done, (busy, False), (first, False), (second, False))
        await started(busy)
        tasks.start_soon(run_all, queue, done, (urgent, True))
        await anyio.wait_all_tasks_blocked()
        busy.finish()
    assert done == ["busy", "urgent", "first", "second"]


async def test_an_urgent_job_stops_a_running_one_which_runs_again_after_it() -> None:
    queue = JobQueue(8, 1)
    stop = StopSignal()
    long, urgent = Job("long", stop), Job("urgent")
    urgent.finish()
    done: list[str] = []
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run_all, queue, done, (long, False))
        await started(long)
        assert [job.stop for job in queue.running] == [stop]
        tasks.start_soon(run_all, queue, done, (urgent, True))
        await started(long)  # run again, once the urgent one is done
        assert done == ["urgent"]
        long.finish()
    assert done == ["urgent", "long"]
    assert (long.runs, stop.stops, stop.requested) == (2, 1, False)
    assert queue.running == ()


async def test_a_job_is_stopped_at_most_max_stops_times() -> None:
    queue = JobQueue(8, 1)
    stop = StopSignal()
    long = Job("long", stop)
    urgent = [Job(f"urgent {n}") for n in range(MAX_STOPS + 1)]
    for job in urgent:
        job.finish()
    done: list[str] = []
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run_all, queue, done, (long, False))
        await started(long)
        for job in urgent[:MAX_STOPS]:
            tasks.start_soon(run_all, queue, done, (job, True))
            await started(long)  # run again, once that urgent one is done
        tasks.start_soon(run_all, queue, done, (urgent[-1], True))
        await anyio.wait_all_tasks_blocked()
        assert not stop.requested  # stopped often enough: this run ends as it is
        long.finish()
    assert done == [job.name for job in urgent[:MAX_STOPS]] + ["long", urgent[-1].name]
    assert (long.runs, stop.stops) == (MAX_STOPS + 1, MAX_STOPS)


async def test_an_urgent_job_starts_while_the_run_it_stopped_is_still_ending() -> None:
    """A stop takes effect at the engine's next step (ONNX Runtime: between two operators); the
    urgent job has the worker at once, not once that step is over."""
    queue = JobQueue(8, 1)
    stop = StopSignal()
    told, urgent_ran = threading.Event(), threading.Event()
    runs: list[int] = []

    def long() -> str:
        runs.append(len(runs) + 1)
        with stop.stopping_with(told.set):
            if len(runs) == 1:
                assert told.wait(WAIT_S)
                # Still ending its step: the run returns only once the urgent job has run.
                assert urgent_ran.wait(WAIT_S), "the urgent job waited for the stopped run"
                raise Preempted("stopped")
        return "long"

    def urgent() -> str:
        urgent_ran.set()
        return "urgent"

    done: list[str] = []
    async with anyio.create_task_group() as tasks:

        async def run_long() -> None:
            done.append(await queue.run(long, stop=stop))

        tasks.start_soon(run_long)
        assert await anyio.to_thread.run_sync(stop.stoppable.wait, WAIT_S)
        done.append(await queue.run(urgent, urgent=True))
    assert done == ["urgent", "long"]
    assert (runs, stop.stops) == ([1, 2], 1)
    assert queue.running == ()
    # One worker again, not two: a second job waits while one runs.
    first, second = Job("first"), Job("second")
    second.finish()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run_all, queue, done, (first, False), (second, False))
        await started(first)
        await anyio.wait_all_tasks_blocked()
        assert len(queue.running) == 1
        first.finish()
    assert done[-2:] == ["first", "second"]


@pytest.mark.parametrize("signal", [False, True], ids=["no signal", "work not stoppable"])
async def test_a_job_that_cannot_be_stopped_finishes_first(signal: bool) -> None:
    """No signal: the queue does not try. A signal the work never honours (as an engine's work
    after its stoppable part): the request changes nothing."""
    queue = JobQueue(8, 1)
    stop = StopSignal() if signal else None
    busy, urgent = Job("busy"), Job("urgent")  # `busy` never says how it is stopped
    urgent.finish()
    done: list[str] = []
    async with anyio.create_task_group() as tasks:

        async def run_busy() -> None:
            done.append(await queue.run(busy, stop=stop))

        tasks.start_soon(run_busy)
        await started(busy)
        tasks.start_soon(run_all, queue, done, (urgent, True))
        await anyio.wait_all_tasks_blocked()
        busy.finish()
    assert done == ["busy", "urgent"]
    assert busy.runs == 1 and (stop is None or (stop.requested and stop.stops == 0))


async def test_an_urgent_job_cancelled_while_waiting_leaves_every_worker_free() -> None:
    queue = JobQueue(8, 1)
    busy, urgent, after = Job("busy"), Job("urgent"), Job("after")
    after.finish()
    done: list[str] = []
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run_all, queue, done, (busy, False))
        await started(busy)
        async with anyio.create_task_group() as waiting:
            waiting.start_soon(run_all, queue, done, (urgent, True))
            await anyio.wait_all_tasks_blocked()
            waiting.cancel_scope.cancel()
        busy.finish()
    with anyio.fail_after(WAIT_S):
        assert await queue.run(after) == "after"
    assert done == ["busy"] and urgent.runs == 0


STOPPED_SPANS = """
import json, threading
import anyio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

from chatacter_common.service import JobQueue, Preempted, StopSignal

queue, stop = JobQueue(4, 1), StopSignal()
runs, running, wake = [], threading.Event(), threading.Event()


def long():
    runs.append(len(runs))
    with stop.stopping_with(wake.set):
        running.set()
        if len(runs) == 1:
            wake.wait(30)
            if stop.requested:
                raise Preempted("stopped for the urgent one")
    return "long"


async def main():
    done = []
    async with anyio.create_task_group() as tasks:
        async def run_long():
            done.append(await queue.run(long, "synthesis", stop=stop))

        tasks.start_soon(run_long)
        await anyio.to_thread.run_sync(running.wait, 30)
        done.append(await queue.run(lambda: "urgent", "synthesis", urgent=True))
    return done


print(json.dumps({
    "done": anyio.run(main),
    "spans": [
        [s.status.status_code.name, [e.name for e in s.events], dict(s.attributes)]
        for s in exporter.get_finished_spans() if s.name == "synthesis"
    ],
}))
"""


def test_a_stopped_run_is_traced_as_stopped_not_as_a_failure() -> None:
    """In its own process: a tracer provider, once installed, stays for the process."""
    import json
    import subprocess
    import sys

    from chatacter_common.service.jobs import STOPPED_EVENT

    done = subprocess.run(
        [sys.executable, "-c", STOPPED_SPANS], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["done"] == ["urgent", "long"]
    stopped, whole = (
        [span for span in found["spans"] if (STOPPED_EVENT in span[1]) == flag]
        for flag in (True, False)
    )
    assert stopped == [["UNSET", [STOPPED_EVENT], {"job.stopped": True}]]
    assert whole == [["UNSET", [], {}], ["UNSET", [], {}]]  # the urgent run, the long one again
