"""The media clients' policy against real local HTTP servers: retries, Retry-After, the breaker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from chattr.media.clients import CircuitBreaker, ClientOptions, ServiceError, VocalizrClient
from chattr.media.local_stack import free_port
from chattr.testing.threaded_server import ThreadedServer


class Scripted:
    """A small HTTP server answering /v1/speech with a scripted sequence of statuses."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.calls = 0
        app = FastAPI()

        @app.post("/v1/speech")
        async def speech(request: Request) -> JSONResponse:
            self.calls += 1
            status = self.statuses.pop(0) if self.statuses else 200
            if status == 200:
                return JSONResponse(
                    {"url": "http://x/files/a.wav", "duration_s": 1.0, "sample_rate": 22050}
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
