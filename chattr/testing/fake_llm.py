"""A local OpenAI/Groq-compatible chat server with scripted, deterministic replies.

Tests and benchmarks point chattr's chat client (or LangChain's ChatGroq or ChatOpenAI) at it,
so the real client code path runs without a hosted LLM. It streams (SSE) at a chosen pace,
records every request it gets, and can be told what to answer next:

    python -m chattr.testing.fake_llm --port 9100 --first-token-ms 150 --tokens-per-s 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from chattr.testing.threaded_server import ThreadedServer

_NAME = re.compile(r"\bmy name is ([A-Z][a-z]+)", re.IGNORECASE)
_TOKEN = re.compile(r"\S+\s*")


@dataclass
class FakeLLMState:
    """What the server was asked and what it will answer next."""

    first_token_s: float = 0.0
    tokens_per_s: float = 0.0  # 0: as fast as possible
    requests: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() of each request
    keys: list[str | None] = field(default_factory=list)  # each request's Authorization header
    # A text (streamed word by word), its tokens as a list (streamed as they are), or a status.
    script: deque[str | int | list[str]] = field(default_factory=deque)
    reply: str | None = None  # the answer when nothing is scripted; None: `default_reply`'s
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_reply(self, body: dict[str, Any], key: str | None = None) -> str | int | list[str]:
        with self.lock:
            self.requests.append(body)
            self.keys.append(key)
            self.arrivals.append(time.monotonic())
            if self.script:
                return self.script.popleft()
        if self.reply is not None:
            return self.reply
        return default_reply(body.get("messages", []))


def default_reply(messages: list[dict[str, Any]]) -> str:
    """A reply that depends on the conversation, so tests can tell memory from luck."""
    texts = [str(m.get("content", "")) for m in messages]
    users = [str(m.get("content", "")) for m in messages if m.get("role") == "user"]
    last = users[-1] if users else ""
    if "my name" in last.lower() and "?" in last:
        for text in reversed(texts[:-1]):
            match = _NAME.search(text)
            if match:
                return f"Your name is {match.group(1)}, as you told me. I remember it well."
        return "You have not told me your name yet. What shall I call you?"
    echo = last.strip().rstrip(".!?")[:80] or "nothing"
    return (
        f"You said {echo}. That is a thought worth weighing carefully. "
        "Let me answer you as plainly as I can."
    )


async def _sleep_until(deadline: float) -> None:
    """Sleep until `time.monotonic()` reaches `deadline` (at once if it has)."""
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


def create_app(state: FakeLLMState) -> FastAPI:
    app = FastAPI(title="fake LLM")

    async def completions(request: Request) -> Any:
        body = await request.json()
        reply = state.next_reply(body, request.headers.get("authorization"))
        if isinstance(reply, int):
            return JSONResponse({"error": {"message": "scripted failure"}}, status_code=reply)
        tokens = reply if isinstance(reply, list) else _TOKEN.findall(reply)
        model = body.get("model", "fake")
        if body.get("stream"):
            return StreamingResponse(_stream(tokens, model), media_type="text/event-stream")
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(tokens)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    async def _stream(tokens: list[str], model: str) -> AsyncIterator[str]:
        chunk_id = f"chatcmpl-{uuid.uuid4().hex}"

        def event(delta: dict[str, Any], finish: str | None = None) -> str:
            payload = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(payload)}\n\n"

        # Each token at its own time from the start, as a hosted LLM streams whatever its client
        # does: sleeping a token's share after each one instead adds every late wake-up to all the
        # tokens after it, and the server, a thread in its client's process in tests and benches,
        # streamed slower the busier that process was.
        started = time.monotonic()
        await _sleep_until(started + state.first_token_s)
        yield event({"role": "assistant", "content": ""})
        for index, token in enumerate(tokens):
            yield event({"content": token})
            if state.tokens_per_s:
                await _sleep_until(started + state.first_token_s + (index + 1) / state.tokens_per_s)
        yield event({}, "stop")
        yield "data: [DONE]\n\n"

    # Groq's client posts to /openai/v1/...; OpenAI-compatible clients to /v1/...
    app.post("/openai/v1/chat/completions")(completions)
    app.post("/v1/chat/completions")(completions)
    return app


class FakeLLMServer:
    """The fake LLM on a free localhost port, in a background thread."""

    def __init__(self, *, first_token_s: float = 0.0, tokens_per_s: float = 0.0) -> None:
        self.state = FakeLLMState(first_token_s=first_token_s, tokens_per_s=tokens_per_s)
        self._server = ThreadedServer(create_app(self.state), lifespan="off")

    def start(self) -> FakeLLMServer:
        self._server.start()
        return self

    @property
    def url(self) -> str:
        """Base URL for the chat client (`CHATTR_LLM_BASE_URL`, provider `groq`)."""
        return self._server.url

    def script(self, *replies: str | int | list[str]) -> None:
        """Answer the next requests with these texts (a list: its tokens, as they are streamed;
        an int answers with that HTTP status)."""
        with self.state.lock:
            self.state.script.extend(replies)

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.requests)

    @property
    def keys(self) -> list[str | None]:
        """Each request's `Authorization` header (None where it sent none)."""
        with self.state.lock:
            return list(self.state.keys)

    def clear(self) -> None:
        """Forget recorded requests and scripted replies."""
        with self.state.lock:
            self.state.requests.clear()
            self.state.arrivals.clear()
            self.state.keys.clear()
            self.state.script.clear()

    def stop(self) -> None:
        self._server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--first-token-ms", type=float, default=0.0)
    parser.add_argument("--tokens-per-s", type=float, default=0.0)
    parser.add_argument(
        "--reply", default=None, help="answer every request with this text (default: an echo)"
    )
    args = parser.parse_args()
    state = FakeLLMState(
        first_token_s=args.first_token_ms / 1000, tokens_per_s=args.tokens_per_s, reply=args.reply
    )
    uvicorn.run(create_app(state), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
