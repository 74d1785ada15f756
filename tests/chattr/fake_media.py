"""vocalizr and visualizr played in-process through `httpx.MockTransport`: the real clients and
the real fan-out, answering in microseconds, misbehaving on demand."""

from __future__ import annotations

import io
import json
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from langchain_core.language_models import BaseChatModel

from chattr.characters.character_set import load_characters
from chattr.media.clients import ClientOptions, VisualizrClient, VocalizrClient
from chattr.media.fanout import FanoutOptions, MediaFanout
from chattr.media.store import MediaStore
from chattr.memory import open_memory
from chattr.turn.service import ChatService

from ..conftest import CHARACTERS

# No waiting between retries: the tests are about what happens, not when.
FAST = ClientOptions(retries=1, backoff_s=0.0, breaker_threshold=100)

VOCALIZR = "http://vocalizr.test"
VISUALIZR = "http://visualizr.test"

Handler = Callable[[httpx.Request], httpx.Response]
# What a test puts in front of a fake service (to delay it, break it): sync or async.
Transport = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


def wav(seconds: float, rate: int = 16_000) -> bytes:
    """A silent mono 16-bit WAV."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\0\0" * round(seconds * rate))
    return out.getvalue()


def words_by_characters(text: str, seconds: float) -> list[dict[str, object]]:
    """vocalizr's `words` for an engine without alignment: each word (and its space) takes its
    share of the audio by characters."""
    words = text.split()
    total = sum(len(word) + 1 for word in words)
    timed: list[dict[str, object]] = []
    said = 0
    for word in words:
        start = seconds * said / total
        said += len(word) + 1
        timed.append({"word": word, "start_s": start, "end_s": round(seconds * said / total, 3)})
    return timed


def file_id(number: int, extension: str) -> str:
    return f"{number:032x}.{extension}"


class CutOff(httpx.AsyncByteStream):
    """A body that stops before its content-length, the connection gone."""

    def __init__(self, start: bytes) -> None:
        self.start = start

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.start
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


def html_page(request: httpx.Request) -> httpx.Response:
    """A proxy's error page, with a 200."""
    return httpx.Response(200, html="<html><body>Welcome to nginx!</body></html>")


def truncated(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200,
        headers={"content-type": "application/json", "content-length": "200"},
        stream=CutOff(b'{"url": "http://x/a.wav", "du'),
    )


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


@dataclass
class FakeVocalizr:
    """/v1/speech and /files/<id>: speech of `seconds_per_word` a word, its words timed by their
    characters as vocalizr estimates them, unless `speech` or `files` answer otherwise;
    /v1/audio/transcriptions: `transcript`, whatever was said."""

    seconds_per_word: float = 0.1
    transcript: str = ""
    speech: Handler | None = None
    files: Handler | None = None
    requests: list[httpx.Request] = field(default_factory=list)
    made: dict[str, bytes] = field(default_factory=dict)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/v1/speech":
            if self.speech is not None:
                return self.speech(request)
            text = json.loads(request.content)["text"]
            seconds = self.seconds_per_word * len(text.split())
            name = file_id(len(self.made) + 1, "wav")
            self.made[name] = wav(seconds)
            return httpx.Response(
                200,
                json={
                    "url": f"{VOCALIZR}/files/{name}",
                    "duration_s": seconds,
                    "sample_rate": 16000,
                    "words": words_by_characters(text, seconds),
                    "word_timing": "estimated",
                },
            )
        if request.url.path == "/v1/audio/transcriptions":
            return httpx.Response(200, json={"text": self.transcript})
        if request.url.path.startswith("/files/"):
            if self.files is not None:
                return self.files(request)
            data = self.made.get(request.url.path.rsplit("/", 1)[1])
            if data is None:
                return httpx.Response(404, json={"error": "not_found", "detail": "no such file"})
            return httpx.Response(200, content=data, headers={"content-type": "audio/wav"})
        return httpx.Response(404, json={"error": "not_found", "detail": request.url.path})

    def client(
        self, options: ClientOptions = FAST, *, through: Transport | None = None
    ) -> VocalizrClient:
        """A client of this vocalizr, its key given; `through`: what answers in its place."""
        transport = httpx.MockTransport(through or self)  # type: ignore[arg-type]
        return VocalizrClient(VOCALIZR, options, "vocalizr-key", transport=transport)


@dataclass
class FakeVisualizr:
    """/v1/videos: a video per audio, unless `videos` answers otherwise."""

    videos: Handler | None = None
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/v1/videos":
            if self.videos is not None:
                return self.videos(request)
            name = file_id(len(self.requests), "mp4")
            return httpx.Response(
                200, json={"url": f"{VISUALIZR}/files/{name}", "duration_s": 1.0, "frames": 25}
            )
        return httpx.Response(404, json={"error": "not_found", "detail": request.url.path})

    def client(
        self, options: ClientOptions = FAST, *, through: Transport | None = None
    ) -> VisualizrClient:
        """A client of this visualizr; `through`: what answers in its place."""
        transport = httpx.MockTransport(through or self)  # type: ignore[arg-type]
        return VisualizrClient(VISUALIZR, options, transport=transport)


def in_process_service(
    tmp_path: Path,
    llm: BaseChatModel,
    vocalizr: FakeVocalizr | None = None,
    visualizr: FakeVisualizr | None = None,
) -> ChatService:
    """The shipped characters, in-process memory, no knowledge, `llm`; with `vocalizr`, a media
    fan-out (speech only, or speech and video with `visualizr`) whose joined replies go to
    `tmp_path`."""
    media = None
    if vocalizr is not None:
        media = MediaFanout(
            vocalizr.client(),
            visualizr.client() if visualizr is not None else None,
            store=MediaStore.under(tmp_path),
            public_url="http://chattr.test",
            options=FanoutOptions(),
        )
    return ChatService(
        characters=load_characters(CHARACTERS),
        memory=open_memory(None, max_turns=10, ttl_s=3600),
        retriever=None,
        llm=llm,
        media=media,
    )
