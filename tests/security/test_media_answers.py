"""chattr's media clients against real local HTTP servers that misbehave: kept-alive connections
closed under them (retried once on a fresh one), nonsense answers (each an entry in the turn's
errors naming the service, through the real MediaFanout), and errors that always say what."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chattr.media.clients import ClientOptions, ServiceError, VisualizrClient, VocalizrClient
from chattr.media.fanout import FanoutOptions, MediaFanout
from chattr.media.store import MediaStore
from chattr.reply import TurnState

SPEECH = {"url": "http://vocalizr/files/a.wav", "duration_s": 1.5, "sample_rate": 22050}


@dataclass
class Request:
    connection: int  # which connection (0, 1, ...)
    number: int  # which request on that connection (0 is its first)
    method: str
    path: str
    body: bytes


# What a handler returns: the raw bytes to send (the connection then stays open for more), or
# None to close the connection without answering; "RST" to reset it.
Handler = Callable[[Request], bytes | str | None]


def answer(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\nconnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


def json_answer(document: object, status: int = 200) -> bytes:
    return answer(status, json.dumps(document).encode())


@dataclass
class RawServer:
    """A tiny HTTP/1.1 server on a real socket, answering as `handler` says, recording requests."""

    handler: Handler
    requests: list[Request] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            index = self.connections
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, index), daemon=True).start()

    def _serve(self, conn: socket.socket, index: int) -> None:
        buffer = b""
        number = 0
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                request = Request(index, number, method, path, body)
                self.requests.append(request)
                number += 1
                reply = self.handler(request)
                if reply is None:
                    return  # closed without a word
                if reply == "RST":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                assert isinstance(reply, bytes)
                conn.sendall(reply)
                if reply.endswith(b"CUT"):
                    return  # a body shorter than its content-length, then gone

    def stop(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], RawServer]]:
    servers: list[RawServer] = []

    def start(handler: Handler) -> RawServer:
        servers.append(RawServer(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def closes_kept_alive_connections(request: Request) -> bytes | None:
    """Answers each connection's first request; a second one on it finds it closed, the way a
    server that timed out the idle connection (visualizr after a stall) leaves it."""
    if request.number > 0:
        return None
    if request.method == "GET":
        return answer(200, b"RIFF-the-file", "audio/wav")
    return json_answer(SPEECH)


def client(url: str, kind: type[VocalizrClient] | type[VisualizrClient] = VocalizrClient):  # type: ignore[no-untyped-def]
    return kind(url, ClientOptions(retries=0, read_timeout_s=5.0, breaker_threshold=100))


async def calls(url: str, count: int) -> list[object]:
    vocalizr = client(url)
    try:
        results: list[object] = []
        for _ in range(count):
            results.append(await vocalizr.synthesize("Hello.", "napoleon"))
            results.append(await vocalizr.download(SPEECH["url"]))
        return results
    finally:
        await vocalizr.aclose()


def test_a_request_on_a_connection_the_server_closed_is_retried_on_a_fresh_one(
    serve: Callable[[Handler], RawServer],
) -> None:
    server = serve(closes_kept_alive_connections)
    results = asyncio.run(calls(server.url, 3))
    assert len(results) == 6
    assert all(r == b"RIFF-the-file" for r in results[1::2])
    # Each download reused the pooled connection of the speech call before it, found it
    # closed, and was sent once more on a fresh connection.
    dropped = [r for r in server.requests if r.number > 0]
    answered = [r for r in server.requests if r.number == 0]
    assert len(answered) == 6 and len(dropped) == 3
    assert all(r.method == "GET" for r in dropped)
    assert server.connections == 6


@pytest.mark.parametrize(
    ("behaviour", "words"),
    [
        (lambda r: None, "(RemoteProtocolError: Server disconnected"),
        (lambda r: "RST", "(ReadError; 1 try)"),  # a type name where the message is empty
    ],
)
def test_a_connection_failing_twice_is_an_error_that_says_what_happened(
    serve: Callable[[Handler], RawServer], behaviour: Handler, words: str
) -> None:
    server = serve(behaviour)
    with pytest.raises(ServiceError) as caught:
        asyncio.run(calls(server.url, 1))
    assert words in caught.value.detail
    assert caught.value.detail.startswith(f"no answer from {server.url} (")
    assert re.search(
        r"\((RemoteProtocolError: Server disconnected.*|ReadError); 1 try\)$", caught.value.detail
    )
    # No retries allowed: the first try and its one resend on a fresh connection, no more.
    assert len(server.requests) == 2


# --- nonsense answers become the turn's errors ------------------------------------------------

NONSENSE: dict[str, tuple[bytes, str]] = {
    "no url": (json_answer({"duration_s": 1.0, "sample_rate": 22050}), "answered without 'url'"),
    "url not text": (
        json_answer({**SPEECH, "url": 5}),
        "answered without a valid 'url' (a int: 5)",
    ),
    "duration not a number": (
        json_answer({**SPEECH, "duration_s": "long"}),
        "answered without a valid 'duration_s'",
    ),
    "an HTML page": (
        answer(200, b"<html><body>Welcome to nginx!</body></html>", "text/html"),
        "answered HTTP 200 with something that is not JSON (text/html",
    ),
    "a JSON list": (json_answer([SPEECH]), "answered with a JSON list, not an object"),
    "a truncated body": (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n"
        b'{"url": "http://x/a.wav", "duCUT',
        "answer cut off (HTTP 200): RemoteProtocolError",
    ),
}


async def one_turn(
    vocalizr_url: str, visualizr_url: str | None, media_dir: Path, **fanout_args: object
) -> TurnState:
    """One sentence through the real MediaFanout; the turn's state once its media settled."""
    fanout = MediaFanout(
        client(vocalizr_url),
        client(visualizr_url, VisualizrClient) if visualizr_url else None,
        store=MediaStore(media_dir),
        public_url="http://chattr",
        options=FanoutOptions(join=False),
        **fanout_args,  # type: ignore[arg-type]
    )
    state = TurnState(session_id="s", character="napoleon", message="Hello")
    job = fanout.start("napoleon", "napoleon", "en")
    job.add("Bonjour, mon ami.")
    async for _ in job.updates():
        pass
    await fanout.aclose()
    state.show_media(job.media)
    return state


@pytest.mark.parametrize("kind", sorted(NONSENSE))
def test_a_nonsense_speech_answer_is_an_error_naming_vocalizr(
    serve: Callable[[Handler], RawServer], tmp_path: Path, kind: str
) -> None:
    reply, words = NONSENSE[kind]
    vocalizr = serve(lambda r: reply)
    state = asyncio.run(one_turn(vocalizr.url, None, tmp_path))
    assert [e.service for e in state.errors] == ["vocalizr"], state.errors
    assert words in state.errors[0].detail
    assert state.segments[0].audio_url is None


@pytest.mark.parametrize("kind", ["no url", "an HTML page", "a truncated body"])
def test_a_nonsense_video_answer_is_an_error_naming_visualizr(
    serve: Callable[[Handler], RawServer], tmp_path: Path, kind: str
) -> None:
    reply, words = NONSENSE[kind]
    vocalizr = serve(lambda r: json_answer(SPEECH))
    visualizr = serve(lambda r: reply)
    state = asyncio.run(one_turn(vocalizr.url, visualizr.url, tmp_path))
    assert [e.service for e in state.errors] == ["visualizr"], state.errors
    assert words in state.errors[0].detail
    assert state.segments[0].audio_url == SPEECH["url"]  # the speech still stands
    assert state.segments[0].video_url is None
    assert visualizr.requests and visualizr.requests[0].path == "/v1/videos"


def test_an_unexpected_failure_in_a_media_task_is_an_error_too(
    serve: Callable[[Handler], RawServer], tmp_path: Path
) -> None:
    vocalizr = serve(lambda r: json_answer(SPEECH))

    def broken_wait(timeout_s: float) -> list[str]:
        raise RuntimeError("the local services could not be started")

    state = asyncio.run(one_turn(vocalizr.url, None, tmp_path, wait_started=broken_wait))
    assert [(e.service, e.detail) for e in state.errors] == [
        ("vocalizr", "failed: RuntimeError: the local services could not be started")
    ]
