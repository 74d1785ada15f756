"""HTTP clients of the media services: pooled connections, timeouts, bounded retries, a breaker.

A service that is down must cost a turn milliseconds, not a timeout per sentence: after a few
failures in a row the circuit opens and calls are refused at once for a while; then one call is
let through to see whether the service is back.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({502, 503, 504})
# Failures before any byte of the answer, as when the service closed an idle kept-alive
# connection just as it was reused: the request was not processed, so sending it again is safe.
STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
MAX_RETRY_AFTER_S = 5.0  # honour Retry-After, but a turn never waits longer than this per retry


class ServiceError(Exception):
    """A media service call failed; `detail` says why, for the person and the logs."""

    def __init__(self, service: str, detail: str) -> None:
        self.service = service
        self.detail = detail
        super().__init__(f"{service}: {detail}")


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; half-opens after `reset_after_s`."""

    def __init__(
        self,
        threshold: int = 3,
        reset_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.reset_after_s = reset_after_s
        self._clock = clock  # a test's own clock moves past the reset time without waiting
        self._failures = 0
        self._opened_at: float | None = None

    @property
    def is_open(self) -> bool:
        # Past the reset time it is half-open: one call goes through to probe the service.
        return self._opened_at is not None and self._clock() - self._opened_at < self.reset_after_s

    def seconds_left(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.reset_after_s - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None

    def record_failure(self) -> None:
        self._failures += 1
        if self._failures >= self.threshold:
            self._opened_at = self._clock()


@dataclass(frozen=True)
class ClientOptions:
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 30.0
    retries: int = 2
    backoff_s: float = 0.2
    breaker_threshold: int = 3
    breaker_reset_s: float = 30.0
    max_connections: int = 16


class ServiceClient:
    """One media service: a shared AsyncClient (keep-alive pool) plus retry and breaker policy."""

    name = "service"

    def __init__(
        self,
        base_url: str,
        options: ClientOptions | None = None,
        api_key: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport`: how requests are sent; httpx's own (a connection pool) unless given, as
        tests give an `httpx.MockTransport` to play the service in-process."""
        self.base_url = base_url.rstrip("/")
        self.options = options or ClientOptions()
        self.transport = transport
        # The service's bearer key, sent on every call (its /files too, to the same host).
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.breaker = CircuitBreaker(self.options.breaker_threshold, self.options.breaker_reset_s)
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        # Created lazily so it binds to the event loop that serves requests.
        if self._http is None:
            o = self.options
            self._http = httpx.AsyncClient(
                headers=self.headers,
                timeout=httpx.Timeout(o.read_timeout_s, connect=o.connect_timeout_s),
                limits=httpx.Limits(
                    max_connections=o.max_connections, max_keepalive_connections=o.max_connections
                ),
                transport=self.transport,
            )
        return self._http

    def internal_url(self, url: str) -> str:
        """A file URL the service gave out (its public address) as reachable from here."""
        parts = urlsplit(url)
        base = urlsplit(self.base_url)
        return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))

    async def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST with bounded retries on failures that are safe to repeat; breaker-guarded."""
        if self.breaker.is_open:
            raise ServiceError(
                self.name,
                f"skipped: {self.name} failed repeatedly; retrying it in "
                f"{self.breaker.seconds_left():.0f} s",
            )
        attempt = 0
        while True:
            try:
                response = await self._request("POST", self.base_url + path, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # The request never reached the service: repeating it is safe.
                if attempt < self.options.retries:
                    attempt += 1
                    await asyncio.sleep(self.options.backoff_s * 2.0 ** (attempt - 1))
                    continue
                self.breaker.record_failure()
                raise ServiceError(
                    self.name, f"unreachable at {self.base_url} ({describe(exc)})"
                ) from exc
            except httpx.TimeoutException as exc:
                self.breaker.record_failure()
                raise ServiceError(
                    self.name, f"no answer within {self.options.read_timeout_s:.0f} s"
                ) from exc
            except httpx.HTTPError as exc:
                self.breaker.record_failure()
                raise ServiceError(self.name, f"request failed: {describe(exc)}") from exc
            except ServiceError:
                self.breaker.record_failure()
                raise

            if response.status_code in RETRYABLE_STATUS:
                if attempt < self.options.retries:
                    attempt += 1
                    await asyncio.sleep(self._retry_delay(response, attempt))
                    continue
                self.breaker.record_failure()
                raise ServiceError(
                    self.name, f"busy or unavailable (HTTP {response.status_code}) after retries"
                )
            if response.status_code >= 400:
                # Our request was refused (bad input): the service itself is fine.
                self.breaker.record_success()
                raise ServiceError(self.name, f"refused: {_error_detail(response)}")
            try:
                data = json_object(self.name, response)
            except ServiceError:
                self.breaker.record_failure()
                raise
            self.breaker.record_success()
            return data

    async def _request(
        self, method: str, url: str, *, json: dict[str, Any] | None = None
    ) -> httpx.Response:
        """One request, its body read whole; retried once on a fresh connection when it failed
        before any answer on a pooled one (the service had closed it while it sat idle)."""
        try:
            return await self._send(self.http, method, url, json)
        except STALE_CONNECTION as exc:
            log.info("%s: %s on a pooled connection; retrying once on a fresh one", self.name, exc)
        if self.transport is not None:
            # A transport given to the client decides its connections: the retry is its too.
            return await self._send(self.http, method, url, json)
        o = self.options
        async with httpx.AsyncClient(
            headers=self.headers,  # the key, as on the first try
            timeout=httpx.Timeout(o.read_timeout_s, connect=o.connect_timeout_s),
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as fresh:
            return await self._send(fresh, method, url, json)

    async def _send(
        self, client: httpx.AsyncClient, method: str, url: str, json: dict[str, Any] | None
    ) -> httpx.Response:
        # Streamed, so a failure before the answer (retryable) and one while reading the answer
        # (not: the service did the work) are told apart.
        response = await client.send(client.build_request(method, url, json=json), stream=True)
        try:
            await response.aread()
        except httpx.TimeoutException:
            raise
        except httpx.HTTPError as exc:
            raise ServiceError(
                self.name, f"answer cut off (HTTP {response.status_code}): {describe(exc)}"
            ) from exc
        finally:
            await response.aclose()
        return response

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float:
        header = response.headers.get("retry-after", "")
        try:
            return min(float(header), MAX_RETRY_AFTER_S)
        except ValueError:
            return self.options.backoff_s * 2.0 ** (attempt - 1)

    async def download(self, url: str) -> bytes:
        """Fetch a file the service made; raises ServiceError saying why not."""
        try:
            response = await self._request("GET", self.internal_url(url))
        except httpx.HTTPError as exc:
            raise ServiceError(self.name, f"could not fetch its file: {describe(exc)}") from exc
        if response.status_code != 200:
            raise ServiceError(self.name, f"could not fetch its file: HTTP {response.status_code}")
        return response.content

    async def healthy(self) -> bool:
        try:
            response = await self.http.get(self.base_url + "/healthz", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def describe(exc: BaseException) -> str:
    """An exception in words, never empty (httpx's ReadError often has no message)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def answer_field(service: str, data: dict[str, Any], name: str, kind: type) -> Any:
    """A field of a service's JSON answer, checked: ServiceError "answered without ..." if not."""
    value = data.get(name)
    if kind is str:
        ok = isinstance(value, str) and bool(value.strip())
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        return value
    if value is None:
        raise ServiceError(service, f"answered without '{name}'")
    raise ServiceError(
        service, f"answered without a valid '{name}' (a {type(value).__name__}: {value!r:.40})"
    )


def json_object(service: str, response: httpx.Response) -> dict[str, Any]:
    """A service's answer as a JSON object; ServiceError saying what it was instead."""
    try:
        data = response.json()
    except ValueError:
        kind = response.headers.get("content-type") or "no content type"
        raise ServiceError(
            service,
            f"answered HTTP {response.status_code} with something that is not JSON "
            f"({kind}, {len(response.content)} bytes)",
        ) from None
    if not isinstance(data, dict):
        raise ServiceError(service, f"answered with a JSON {type(data).__name__}, not an object")
    return data


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("error") or body)
    return str(body)


@dataclass(frozen=True)
class SpeechResult:
    url: str
    duration_s: float
    sample_rate: int


@dataclass(frozen=True)
class VideoResult:
    url: str
    duration_s: float
    frames: int


class VocalizrClient(ServiceClient):
    """Text → speech in a character's voice."""

    name = "vocalizr"
    _transcription_warmed = False

    async def synthesize(self, text: str, voice: str, language: str = "en") -> SpeechResult:
        data = await self.post_json(
            "/v1/speech", {"text": text, "voice": voice, "language": language}
        )
        return SpeechResult(
            url=answer_field(self.name, data, "url", str),
            duration_s=float(answer_field(self.name, data, "duration_s", float)),
            sample_rate=answer_field(self.name, data, "sample_rate", int),
        )

    async def warm_transcription(self) -> None:
        """Have vocalizr load its speech-to-text model now, once (where VOCALIZR_STT_PRELOAD is
        off, as in the local stack, it loads on first use): a moment of silence, whose "nothing
        was said" answer is expected. Called when someone is about to speak; never raises."""
        if self._transcription_warmed:
            return
        self._transcription_warmed = True
        try:
            await self.transcribe(_SILENT_WAV, "silence.wav")
        except ServiceError as exc:
            log.debug("speech-to-text warmed (%s)", exc.detail)

    async def transcribe(self, audio: bytes, filename: str, language: str = "en") -> str:
        """Speech → text (POST /v1/audio/transcriptions); ServiceError says why it failed."""
        try:
            response = await self.http.post(
                self.base_url + "/v1/audio/transcriptions",
                files={"file": (filename, audio)},
                data={"language": language, "response_format": "json"},
            )
        except httpx.HTTPError as exc:
            raise ServiceError(self.name, f"unreachable at {self.base_url} ({exc})") from exc
        if response.status_code >= 400:
            raise ServiceError(self.name, _error_detail(response))
        text = json_object(self.name, response).get("text")
        if not isinstance(text, str):  # "" is an answer: nothing was said
            raise ServiceError(self.name, "answered without 'text'")
        return text


def _silent_wav(seconds: float = 0.25, rate: int = 16_000) -> bytes:
    """A WAV file of silence (16-bit mono)."""
    frames = int(seconds * rate)
    header = b"RIFF" + (36 + 2 * frames).to_bytes(4, "little") + b"WAVEfmt "
    header += (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
    header += rate.to_bytes(4, "little") + (2 * rate).to_bytes(4, "little")
    header += (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    return header + b"data" + (2 * frames).to_bytes(4, "little") + bytes(2 * frames)


_SILENT_WAV = _silent_wav()


class VisualizrClient(ServiceClient):
    """Speech audio + a portrait → a talking-head video."""

    name = "visualizr"

    async def render(self, audio_url: str, portrait: str, fps: int = 25) -> VideoResult:
        data = await self.post_json(
            "/v1/videos", {"audio_url": audio_url, "portrait": portrait, "fps": fps}
        )
        return VideoResult(
            url=answer_field(self.name, data, "url", str),
            duration_s=float(answer_field(self.name, data, "duration_s", float)),
            frames=answer_field(self.name, data, "frames", int),
        )
