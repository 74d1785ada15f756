"""Chat completions streamed over HTTP from Groq or any OpenAI-compatible server.

The wire protocol is small: one POST, answered with server-sent events that each carry a piece
of the reply. httpx, which speaks it, is loaded already (Gradio imports it); the vendors' SDKs and
LangChain take 1-2 s of the interpreter to import, and on a cold start the first turn waited for
them (bench/startup.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx

from chattr.media.clients import describe

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

log = logging.getLogger(__name__)

Provider = Literal["groq", "openai"]

# Where each provider's API is when no base URL is set, and the path of its chat completions
# under a base URL (Groq's clients take the host and add /openai/v1; OpenAI's take the /v1).
DEFAULT_BASE_URLS: dict[str, str] = {
    "groq": "https://api.groq.com",
    "openai": "https://api.openai.com/v1",
}
COMPLETIONS_PATHS: dict[str, str] = {
    "groq": "/openai/v1/chat/completions",
    "openai": "/chat/completions",
}
# A message's LangChain type → its role in the request.
ROLES = {"system": "system", "human": "user", "ai": "assistant"}
# Answers worth one more try: the server was busy, or failed on its side.
RETRIED_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
RETRY_DELAY_S = 0.5
# A server that asks for a longer wait than this fails the turn at once, saying how long: the
# person is waiting for the reply.
MAX_RETRY_AFTER_S = 10.0


class LLMUnreachable(ConnectionError):
    """The server could not be reached, or its answer stopped before it was complete."""


class LLMRefused(RuntimeError):
    """The server answered with an error status (a bad key, an unknown model, a limit)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclass(frozen=True)
class ContentChunk:
    """A piece of the reply's text, as LangChain's chunks carry it (`content`)."""

    content: str


def request_messages(messages: str | Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """The request's `messages` from the prompt (a plain string is one user message)."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    wire = []
    for message in messages:
        role = ROLES.get(message.type)
        if role is None:
            raise ValueError(f"a {message.type!r} message cannot be sent to the chat model")
        wire.append({"role": role, "content": message.content})
    return wire


def error_detail(response: httpx.Response) -> str:
    """The server's own words for an error: OpenAI's and Groq's `{"error": {"message"}}`,
    FastAPI's `{"detail"}`, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if body.get("detail"):
            return str(body["detail"])
    return json.dumps(body)[:300]


def retry_after_s(response: httpx.Response) -> float:
    """How long the server asks to wait (`Retry-After` in seconds), else the default pause."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return RETRY_DELAY_S


class ChatCompletions:
    """Streams a chat completion: `async for chunk in model.astream(messages)`, like a
    LangChain chat model, each chunk's `content` a piece of the reply's text."""

    def __init__(
        self,
        *,
        provider: Provider,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 400,
        timeout_s: float = 60.0,
        max_retries: int = 1,
    ) -> None:
        base = (base_url or DEFAULT_BASE_URLS[provider]).rstrip("/")
        self.url = base + COMPLETIONS_PATHS[provider]
        self.model = model
        self.temperature = temperature
        # Groq's API names the bound `max_tokens`; OpenAI's newer name is `max_completion_tokens`
        # (what LangChain's clients send for each).
        self.max_tokens_field = "max_tokens" if provider == "groq" else "max_completion_tokens"
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self._headers = {"Accept": "text/event-stream", "User-Agent": "chattr"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = httpx.Timeout(timeout_s)
        # One connection pool per event loop: a pool belongs to the loop that opened it.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._clients = weakref.WeakKeyDictionary()

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = httpx.AsyncClient(timeout=self._timeout, headers=self._headers)
            self._clients[loop] = client
        return client

    def body(self, messages: str | Sequence[BaseMessage]) -> dict[str, Any]:
        """The request for `messages`, streamed."""
        return {
            "model": self.model,
            "messages": request_messages(messages),
            "temperature": self.temperature,
            self.max_tokens_field: self.max_tokens,
            "stream": True,
        }

    async def astream(self, messages: str | Sequence[BaseMessage]) -> AsyncIterator[ContentChunk]:
        """The reply's text as it comes. A busy server or a failed connection gets
        `max_retries` more tries, only before any text has come."""
        body = self.body(messages)
        attempt = 0
        while True:
            try:
                async for chunk in self._stream(body):
                    yield chunk
                return
            except _Retry as retry:
                attempt += 1
                if attempt > self.max_retries:
                    raise retry.failure from retry.__cause__
                log.info("LLM call failed (%s); trying again in %.1f s", retry.failure, retry.delay)
                await asyncio.sleep(retry.delay)

    async def _stream(self, body: dict[str, Any]) -> AsyncIterator[ContentChunk]:
        host = urlsplit(self.url).netloc
        answered = False
        try:
            async with self._client().stream("POST", self.url, json=body) as response:
                answered = True
                if response.status_code != 200:
                    await response.aread()
                    raise self._refusal(response, host)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, comments, `event:` names
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    content = self._content(data, host)
                    if content:
                        yield ContentChunk(content)
        except httpx.TransportError as exc:
            what = describe(exc)
            if answered:
                raise LLMUnreachable(f"the answer from {host} stopped: {what}") from exc
            raise _Retry(
                LLMUnreachable(f"could not reach {self.url}: {what}"), RETRY_DELAY_S
            ) from exc

    def _refusal(self, response: httpx.Response, host: str) -> Exception:
        detail = error_detail(response)
        message = f"{host} answered {response.status_code}: {detail}"
        if response.status_code in (401, 403):
            message += " (check GROQ_API_KEY, the key chattr sends)"
        failure = LLMRefused(response.status_code, message)
        if response.status_code in RETRIED_STATUSES:
            delay = retry_after_s(response)
            if delay > MAX_RETRY_AFTER_S:
                return LLMRefused(
                    response.status_code, f"{message}; the server asks to wait {delay:.0f} s"
                )
            return _Retry(failure, delay)
        return failure

    @staticmethod
    def _content(data: str, host: str) -> str:
        """The text an event adds; an error sent inside the stream is raised."""
        try:
            event = json.loads(data)
        except ValueError:
            raise LLMRefused(
                200, f"{host} sent an event that is not JSON: {data[:100]!r}"
            ) from None
        if not isinstance(event, dict):
            return ""
        error = event.get("error")
        if error:
            detail = error.get("message", error) if isinstance(error, dict) else error
            raise LLMRefused(200, f"{host} stopped the answer: {detail}")
        choices = event.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            return ""
        delta = choices[0].get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        return content if isinstance(content, str) else ""


class _Retry(Exception):
    """A failure before any text came that one more try may mend."""

    def __init__(self, failure: Exception, delay: float) -> None:
        super().__init__(str(failure))
        self.failure = failure
        self.delay = delay
