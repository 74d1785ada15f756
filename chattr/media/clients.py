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

from chatacter_common.telemetry import inject
from chattr.reply import WordTime

log = logging.getLogger(__name__)

# A 503 is a service saying "not now" (its queue is full, its engine still loading) and a 502 a
# proxy saying it reached no replica: the work was not done, so it is asked again. Not a 504: the
# service may still be working on it, and a second try would double the work and the wait.
RETRYABLE_STATUS = frozenset({502, 503})
UNAVAILABLE_STATUS = frozenset({502, 503, 504})
# A 503 that waiting does not cure: the engine failed to load (readiness keeps a load balancer's
# traffic off such a replica, so asking the same address again would find it again).
FINAL_CODES = frozenset({"engine_unavailable"})
# Failures before any byte of the answer, as when the service closed an idle kept-alive
# connection just as it was reused, or a replica died: the request was not processed (or its
# work died with the process), so sending it again is safe.
STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
NOT_CONNECTED = (httpx.ConnectError, httpx.ConnectTimeout, *STALE_CONNECTION)
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
    """`retries`: further tries of a call that failed safely (refused or reset connection, 502,
    503); `retry_deadline_s`: no wait or retry starts later than this after the first try."""

    connect_timeout_s: float = 2.0
    read_timeout_s: float = 30.0
    retries: int = 2
    retry_deadline_s: float = 10.0
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
        """POST with bounded retries on failures that are safe to repeat; breaker-guarded.

        One call is one success or one failure to the breaker, however many tries it took.
        """
        if self.breaker.is_open:
            raise ServiceError(
                self.name,
                f"skipped: {self.name} failed repeatedly; retrying it in "
                f"{self.breaker.seconds_left():.0f} s",
            )
        try:
            response, tries = await self._send_retrying("POST", path, json=body)
        except ServiceError:
            self.breaker.record_failure()
            raise
        if response.status_code in UNAVAILABLE_STATUS:
            self.breaker.record_failure()
            raise ServiceError(
                self.name,
                f"busy or unavailable (HTTP {response.status_code}, {plural(tries)}): "
                f"{_error_detail(response)}",
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

    async def _send_retrying(
        self, method: str, path: str, **content: Any
    ) -> tuple[httpx.Response, int]:
        """The service's answer to one request, sent again while a failure says the work was not
        done: a refused or reset connection, a 502, a 503 (after its Retry-After, capped at
        MAX_RETRY_AFTER_S). At most `retries` more tries, none starting past `retry_deadline_s`.

        Returns the last answer (a 503 too, once tries are spent) and the tries it took; raises
        ServiceError when no answer came.
        """
        o = self.options
        deadline = time.monotonic() + o.retry_deadline_s
        tries = 0
        while True:
            tries += 1
            answer: httpx.Response | None = None
            try:
                # A retry goes on a new connection: behind a connection balancer (a Kubernetes
                # Service) a kept-alive one would take it to the same busy or dying replica.
                url = self.base_url + path
                answer = await self._request(method, url, fresh=tries > 1, **content)
            except NOT_CONNECTED as exc:
                failure = describe(exc)
                never_reached = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                delay = o.backoff_s * 2.0 ** (tries - 1)
            except httpx.TimeoutException as exc:
                raise ServiceError(self.name, f"no answer within {o.read_timeout_s:.0f} s") from exc
            except httpx.HTTPError as exc:
                raise ServiceError(self.name, f"request failed: {describe(exc)}") from exc
            else:
                if not retryable(answer):
                    return answer, tries
                failure = f"HTTP {answer.status_code}"
                delay = self._retry_delay(answer, tries)
            if tries > o.retries or time.monotonic() + delay > deadline:
                if answer is not None:
                    return answer, tries
                where = "unreachable at" if never_reached else "no answer from"
                raise ServiceError(
                    self.name, f"{where} {self.base_url} ({failure}; {plural(tries)})"
                )
            log.info("%s: %s; trying again in %.1f s", self.name, failure, delay)
            await asyncio.sleep(delay)

    async def _request(
        self, method: str, url: str, *, fresh: bool = False, **content: Any
    ) -> httpx.Response:
        """One request, its body read whole, on a pooled connection unless `fresh`; retried once
        on a fresh connection when it failed before any answer on a pooled one (the service had
        closed it while it sat idle)."""
        if not fresh:
            try:
                return await self._send(self.http, method, url, content)
            except STALE_CONNECTION as exc:
                log.info("%s: %s on a pooled connection; retrying on a fresh one", self.name, exc)
        if self.transport is not None:
            # A transport given to the client decides its connections: the retry is its too.
            return await self._send(self.http, method, url, content)
        o = self.options
        async with httpx.AsyncClient(
            headers=self.headers,  # the key, as on the first try
            timeout=httpx.Timeout(o.read_timeout_s, connect=o.connect_timeout_s),
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as new_connection:
            return await self._send(new_connection, method, url, content)

    async def _send(
        self, client: httpx.AsyncClient, method: str, url: str, content: dict[str, Any]
    ) -> httpx.Response:
        # Streamed, so a failure before the answer (retryable) and one while reading the answer
        # (not: the service did the work) are told apart.
        request = client.build_request(method, url, **content)
        inject(request.headers)  # the turn's trace continues in the service
        response = await client.send(request, stream=True)
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

    def _retry_delay(self, response: httpx.Response, tries: int) -> float:
        """Retry-After in seconds (capped), else exponential backoff."""
        header = response.headers.get("retry-after", "")
        try:
            return min(max(float(header), 0.0), MAX_RETRY_AFTER_S)
        except ValueError:
            return self.options.backoff_s * 2.0 ** (tries - 1)

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


def retryable(response: httpx.Response) -> bool:
    """Whether an answer says the work was not done and may be asked for again."""
    if response.status_code not in RETRYABLE_STATUS:
        return False
    return error_code(response) not in FINAL_CODES


def error_code(response: httpx.Response) -> str | None:
    """The `error` of the services' `{error, detail}` body; None for any other body."""
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def plural(tries: int) -> str:
    return "1 try" if tries == 1 else f"{tries} tries"


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
    words: tuple[WordTime, ...] = ()  # when each word ends; empty when vocalizr did not say


# More words than a sentence of vocalizr's longest text could hold: an answer that is not speech.
MAX_WORDS = 2000


def word_times(value: Any) -> tuple[WordTime, ...]:
    """vocalizr's `words` ([{word, end_s}, ...], in order): the words and when each ends; none at
    all when it is absent or anything in it is off (an older vocalizr, a broken answer)."""
    if not isinstance(value, list) or len(value) > MAX_WORDS:
        return ()
    words: list[WordTime] = []
    for item in value:
        if not isinstance(item, dict):
            return ()
        word, end = item.get("word"), item.get("end_s")
        if not isinstance(word, str) or isinstance(end, bool) or not isinstance(end, int | float):
            return ()
        if not math.isfinite(end) or end < 0 or (words and end < words[-1].end_s):
            return ()
        words.append(WordTime(word, float(end)))
    return tuple(words)


@dataclass(frozen=True)
class VideoResult:
    url: str
    duration_s: float
    frames: int


class VocalizrClient(ServiceClient):
    """Text → speech in a character's voice."""

    name = "vocalizr"
    _transcription_warmed = False

    async def synthesize(
        self,
        text: str,
        voice: str,
        language: str = "en",
        emotion: str | None = None,
        *,
        first: bool = False,
    ) -> SpeechResult:
        """`emotion`: one of the 28 labels, which nudges the voice; None: vocalizr's neutral.
        `first`: the first sentence of a reply, which vocalizr speaks before the others waiting
        and stops a running one for (`priority: first`)."""
        body: dict[str, Any] = {"text": text, "voice": voice, "language": language}
        if emotion is not None:
            body["emotion"] = emotion
        if first:  # `normal`, vocalizr's default, goes unsaid
            body["priority"] = "first"
        data = await self.post_json("/v1/speech", body)
        return SpeechResult(
            url=answer_field(self.name, data, "url", str),
            duration_s=float(answer_field(self.name, data, "duration_s", float)),
            sample_rate=answer_field(self.name, data, "sample_rate", int),
            words=word_times(data.get("words")),
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
        response, _ = await self._send_retrying(
            "POST",
            "/v1/audio/transcriptions",
            files={"file": (filename, audio)},
            data={"language": language, "response_format": "json"},
        )
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

    async def render(
        self,
        audio_url: str,
        portrait: str,
        fps: int = 25,
        *,
        expression: str | None = None,
        previous_expression: str | None = None,
    ) -> VideoResult:
        """`expression`: the label the face shows (or the character's sprite for it), eased from
        `previous_expression`, the previous clip's; None: neutral."""
        body: dict[str, Any] = {"audio_url": audio_url, "portrait": portrait, "fps": fps}
        if expression is not None:
            body["expression"] = expression
        if previous_expression is not None:
            body["previous_expression"] = previous_expression
        data = await self.post_json("/v1/videos", body)
        return VideoResult(
            url=answer_field(self.name, data, "url", str),
            duration_s=float(answer_field(self.name, data, "duration_s", float)),
            frames=answer_field(self.name, data, "frames", int),
        )
