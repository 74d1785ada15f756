"""The media clients' policy against real local HTTP servers: retries, Retry-After, the breaker;
replicas behind one address, one of them busy or dead."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from chatacter_common.service import JobQueue, install_error_handlers
from chattr.media.clients import (
    MAX_WORDS,
    CircuitBreaker,
    ClientOptions,
    ServiceError,
    VocalizrClient,
    word_times,
)
from chattr.media.local_stack import free_port
from chattr.reply import WordTime
from chattr.testing.threaded_server import ThreadedServer


class Scripted:
    """A small HTTP server answering /v1/speech with a scripted sequence of statuses."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.calls = 0
        self.answer: dict[str, Any] = {}  # more fields of a 200's body
        app = FastAPI()

        @app.post("/v1/speech")
        async def speech(request: Request) -> JSONResponse:
            self.calls += 1
            status = self.statuses.pop(0) if self.statuses else 200
            if status == 200:
                return JSONResponse(
                    {
                        "url": "http://x/files/a.wav",
                        "duration_s": 1.0,
                        "sample_rate": 22050,
                        **self.answer,
                    }
                )
            headers = {"Retry-After": "0.1"} if status == 503 else {}
            return JSONResponse({"error": "e", "detail": f"status {status}"}, status, headers)

        self.server = ThreadedServer(app, lifespan="off")


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    s = Scripted()
    s.server.start()
    yield s
    s.server.stop()


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_503_is_retried_after_retry_after_then_succeeds(scripted: Scripted) -> None:
    client = VocalizrClient(scripted.server.url, ClientOptions(retries=2))
    scripted.statuses = [503, 503]
    started = time.monotonic()
    result = run(client.synthesize("Hello.", "napoleon"))
    assert result.duration_s == 1.0 and scripted.calls == 3
    assert time.monotonic() - started >= 0.2  # waited as Retry-After asked


def test_the_words_of_the_speech_are_read_with_when_each_ends(scripted: Scripted) -> None:
    client = VocalizrClient(scripted.server.url, ClientOptions(retries=0))
    scripted.answer = {
        "words": [
            {"word": "Hello", "start_s": 0.05, "end_s": 0.4},
            {"word": "there.", "start_s": 0.45, "end_s": 0.9},
        ],
        "word_timing": "aligned",
    }
    result = run(client.synthesize("Hello there.", "napoleon"))
    assert result.words == (WordTime("Hello", 0.4), WordTime("there.", 0.9))


def test_an_answer_without_word_times_is_speech_without_them(scripted: Scripted) -> None:
    client = VocalizrClient(scripted.server.url, ClientOptions(retries=0))  # an older vocalizr
    result = run(client.synthesize("Hello there.", "napoleon"))
    assert result.words == () and result.url == "http://x/files/a.wav"


@pytest.mark.parametrize(
    "words",
    [
        "Hello there.",
        [{"word": "Hello", "end_s": 0.4}, "there."],
        [{"word": "Hello", "end_s": "0.4"}],
        [{"word": "Hello", "end_s": float("nan")}],
        [{"word": "Hello", "end_s": -1}],
        [{"word": "Hello", "end_s": True}],
        [{"word": 7, "end_s": 0.4}],
        [{"word": "Hello", "end_s": 0.9}, {"word": "there.", "end_s": 0.4}],  # back in time
        [{"word": "a", "end_s": 0.1}] * (MAX_WORDS + 1),
    ],
)
def test_malformed_word_times_are_none(words: Any) -> None:
    assert word_times(words) == ()


def test_retries_are_bounded_and_the_error_says_so(scripted: Scripted) -> None:
    client = VocalizrClient(scripted.server.url, ClientOptions(retries=1))
    scripted.statuses = [503, 503, 503]
    with pytest.raises(ServiceError, match="HTTP 503"):
        run(client.synthesize("Hello.", "napoleon"))
    assert scripted.calls == 2


def test_a_4xx_is_not_retried_and_does_not_open_the_circuit(scripted: Scripted) -> None:
    client = VocalizrClient(scripted.server.url, ClientOptions(retries=2, breaker_threshold=1))
    scripted.statuses = [404]
    with pytest.raises(ServiceError, match="status 404"):
        run(client.synthesize("Hello.", "nobody"))
    assert scripted.calls == 1 and not client.breaker.is_open


def test_a_dead_service_opens_the_circuit_and_is_then_skipped_at_once() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    client = VocalizrClient(
        dead, ClientOptions(retries=1, backoff_s=0.01, breaker_threshold=2, breaker_reset_s=60)
    )

    async def attempts() -> list[str]:
        details = []
        for _ in range(3):
            try:
                await client.synthesize("Hello.", "napoleon")
            except ServiceError as exc:
                details.append(exc.detail)
        await client.aclose()
        return details

    details = run(attempts())
    assert "unreachable" in details[0] and "unreachable" in details[1]
    # Skipped: refused by the open circuit without a connection attempt (no time spent on it).
    assert details[2].startswith("skipped") and client.breaker.is_open


class ManualClock:
    """A clock the test moves by hand: no waiting, and no race with a slow machine."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_half_opens_after_its_reset_time() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(threshold=1, reset_after_s=30.0, clock=clock)
    breaker.record_failure()
    assert breaker.is_open and breaker.seconds_left() == 30.0
    clock.now += 29.5
    assert breaker.is_open and breaker.seconds_left() == pytest.approx(0.5)
    clock.now += 0.5
    assert not breaker.is_open  # one probe may go through
    breaker.record_success()
    assert not breaker.is_open and breaker.seconds_left() == 0


async def test_speech_to_text_is_warmed_once_with_silence_and_never_raises() -> None:
    import httpx
    import soundfile as sf

    seen: list[httpx.Request] = []

    def vocalizr(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        assert request.url.path == "/v1/audio/transcriptions"
        return httpx.Response(422, json={"error": "no_speech", "detail": "nothing was said"})

    client = VocalizrClient(
        "http://vocalizr.test", ClientOptions(), "key", transport=httpx.MockTransport(vocalizr)
    )
    await client.warm_transcription()
    await client.warm_transcription()
    assert len(seen) == 1
    # What it sent is a real WAV file: a quarter second of silence.
    import io
    import re

    body = seen[0].content
    start = body.index(b"RIFF")
    samples, rate = sf.read(io.BytesIO(body[start : start + 44 + 8000]))
    assert rate == 16000 and len(samples) == 4000 and not samples.any()
    assert re.search(rb'name="file"; filename="silence.wav"', body)
    await client.aclose()


# --- replicas behind one address ------------------------------------------------------------


class Replica:
    """A speech service as the kit makes one: its bounded job queue and its error answers (a full
    queue is 503 `queue_full` with Retry-After), served on loopback."""

    def __init__(self, max_jobs: int = 1) -> None:
        self.jobs = JobQueue(max_jobs, 1, "speech jobs")
        self.calls = 0
        self.on_refusal: Callable[[], None] = lambda: None
        app = FastAPI()
        install_error_handlers(app, retry_after_s=self.jobs.retry_after_s)

        @app.post("/v1/speech")
        async def speech() -> dict[str, Any]:
            self.calls += 1
            try:
                release = self.jobs.acquire()
            except Exception:
                self.on_refusal()
                raise
            release()
            return {"url": "http://x/files/a.wav", "duration_s": 1.0, "sample_rate": 22050}

        self.server = ThreadedServer(app, lifespan="off")

    def busy(self) -> Callable[[], None]:
        """Fill the queue as running jobs would; returns what frees it."""
        return self.jobs.acquire()


@pytest.fixture
def replicas() -> Iterator[Callable[[], Replica]]:
    started: list[Replica] = []

    def start() -> Replica:
        replica = Replica()
        replica.server.start()
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.server.stop()


@contextlib.asynccontextmanager
async def balancer(ports: list[int]) -> AsyncIterator[str]:
    """One address before several replicas, as a Kubernetes Service: each new connection goes to
    the next replica in turn; one to a replica that is gone is reset at once."""
    turn = itertools.cycle(ports)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", next(turn))
        except OSError:
            writer.transport.abort()  # a reset, before any answer
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(connect, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_a_busy_replica_costs_a_retry_after_its_retry_after_not_a_clip(
    replicas: Callable[[], Replica],
) -> None:
    busy, free = replicas(), replicas()
    busy.busy()
    async with balancer([busy.server.port, free.server.port]) as address:
        client = VocalizrClient(address, ClientOptions(retries=2, breaker_threshold=1))
        started = time.monotonic()
        speech = await client.synthesize("Hello.", "napoleon")
        waited = time.monotonic() - started
        await client.aclose()
    assert speech.duration_s == 1.0
    assert (busy.calls, free.calls) == (1, 1)  # the retry went to the other replica
    assert waited >= busy.jobs.retry_after_s() == 1  # as Retry-After asked
    # A call that succeeded on its retry is no failure: the breaker (threshold 1) stays shut.
    assert not client.breaker.is_open


async def test_dead_replicas_cost_retries_not_a_clip(replicas: Callable[[], Replica]) -> None:
    alive = replicas()
    dead = [free_port(), free_port()]
    async with balancer([*dead, alive.server.port]) as address:
        client = VocalizrClient(address, ClientOptions(retries=2, backoff_s=0.01))
        speech = await client.synthesize("Hello.", "napoleon")
        await client.aclose()
    assert speech.duration_s == 1.0 and alive.calls == 1


async def test_a_full_queue_is_retried_until_a_place_frees(replicas: Callable[[], Replica]) -> None:
    replica = replicas()
    free_place = replica.busy()
    replica.on_refusal = free_place  # the job ahead ends while the client waits
    client = VocalizrClient(replica.server.url, ClientOptions(retries=2, breaker_threshold=1))
    speech = await client.synthesize("Hello.", "napoleon")
    await client.aclose()
    assert speech.duration_s == 1.0 and replica.calls == 2
    assert not client.breaker.is_open


async def test_retries_stop_at_the_deadline_and_count_once_for_the_breaker(
    replicas: Callable[[], Replica],
) -> None:
    replica = replicas()
    replica.busy()  # and never freed
    # Retry-After is 1 s; a 0.5 s deadline leaves no time to wait it out: one try, no more.
    options = ClientOptions(retries=5, retry_deadline_s=0.5, breaker_threshold=2)
    client = VocalizrClient(replica.server.url, options)
    with pytest.raises(
        ServiceError, match=r"busy or unavailable \(HTTP 503, 1 try\): 1 speech jobs"
    ):
        await client.synthesize("Hello.", "napoleon")
    assert replica.calls == 1 and not client.breaker.is_open  # one call, one failure
    with pytest.raises(ServiceError, match="busy or unavailable"):
        await client.synthesize("Hello.", "napoleon")
    assert client.breaker.is_open  # the second failed call opened it
    await client.aclose()
