"""Attacks on visualizr, against the real service process over HTTP (issue 14).

Decode bombs in uploads and in fetched `audio_url` bodies, chunked uploads past the cap, bodies
that drip, the allow-list of host and port, the bearer key, and errors with server paths.
"""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import brotli
import httpx
import pytest

from tests.security.services_support import (
    PHOTO,
    SPEECH,
    PeakMemory,
    Service,
    chunked_upload,
    flac_bomb,
    free_port,
    service_process,
)

KEY = "visualizr-key-0123456789"
VOCALIZR_KEY = "vocalizr-key-0123456789"
UPLOAD_LIMIT = 5_000_000
DEADLINE_S = 4.0
MAX_QUEUE = 8
INFLATED = 500 * (1 << 20)
# 500 MB of zeros: brotli squeezes them into a few hundred bytes, gzip into about 500 KB.
BROTLI_BOMB = brotli.compress(b"\0" * INFLATED, quality=11)
GZIP_BOMB = gzip.compress(b"\0" * INFLATED, compresslevel=9)


class Origin(http.server.ThreadingHTTPServer):
    """A test web server: bombs, a dripping body, and clean speech; records Authorization."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), OriginHandler)
        self.seen_auth: dict[str, str | None] = {}
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


class OriginHandler(http.server.BaseHTTPRequestHandler):
    server: Origin

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, body: bytes, encoding: str | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.seen_auth[self.path] = self.headers.get("Authorization")
        if self.path.startswith("/brotli"):
            self._send(BROTLI_BOMB, "br")
        elif self.path.startswith("/gzip"):
            self._send(GZIP_BOMB, "gzip")
        elif self.path.startswith("/speech"):
            self._send(SPEECH.read_bytes())
        elif self.path.startswith("/drip"):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"R")
                    self.wfile.flush()
                    time.sleep(3)
            except OSError:
                pass  # visualizr hung up: the point
        else:
            self.send_error(404)


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[Origin, Origin]]:
    """Two allow-listed servers: the first stands in for vocalizr (VISUALIZR_VOCALIZR_URL)."""
    pair = (Origin(), Origin())
    yield pair
    for origin in pair:
        origin.shutdown()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("visualizr-attacks")
    (root / "characters" / "einstein").mkdir(parents=True)
    (root / "characters" / "einstein" / "portrait.jpg").write_bytes(PHOTO.read_bytes())
    return root


@pytest.fixture(scope="module")
def visualizr(workdir: Path, origins: tuple[Origin, Origin]) -> Iterator[Service]:
    vocalizr, other = origins
    env = {
        "VISUALIZR_ENGINE": "warp",
        "VISUALIZR_UI": "false",
        "VISUALIZR_CHARACTERS_DIR": str(workdir / "characters"),
        "VISUALIZR_DATA_DIR": str(workdir / "data"),
        "VISUALIZR_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        "VISUALIZR_MAX_QUEUE": str(MAX_QUEUE),
        "VISUALIZR_FETCH_TIMEOUT_S": str(DEADLINE_S),
        "VISUALIZR_DEFAULT_SIZE": "128",
        "VISUALIZR_API_KEY": KEY,
        "VISUALIZR_VOCALIZR_URL": vocalizr.url,
        "VISUALIZR_VOCALIZR_API_KEY": VOCALIZR_KEY,
        "VISUALIZR_ALLOWED_AUDIO_HOSTS": f"127.0.0.1:{vocalizr.port},127.0.0.1:{other.port}",
    }
    with service_process("visualizr", env, workdir) as service:
        yield service


def video(service: Service, audio_url: str, timeout: float = 60) -> httpx.Response:
    with service.client(KEY, timeout=timeout) as http:
        return http.post("/v1/videos", json={"audio_url": audio_url, "portrait": "einstein"})


def test_flac_bomb_upload_is_refused_without_memory_or_time(visualizr: Service) -> None:
    bomb = flac_bomb()
    with visualizr.client(KEY) as http, PeakMemory(visualizr.process) as memory:
        started = time.monotonic()
        reply = http.post(
            "/v1/videos",
            files={"audio": ("bomb.flac", bomb)},
            data={"character": "einstein"},
        )
        elapsed = time.monotonic() - started
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"] == "audio_too_long"
    assert "600.0 s" in reply.json()["detail"]
    print(f"flac bomb: +{memory.growth_mb:.1f} MB, {elapsed * 1000:.0f} ms")
    assert memory.growth_mb < 100 and elapsed < 3.0


@pytest.mark.parametrize("path", ["/brotli.wav", "/gzip.wav"])
def test_compressed_audio_url_bomb_is_capped_on_decoded_bytes(
    visualizr: Service, origins: tuple[Origin, Origin], path: str
) -> None:
    if path.startswith("/brotli"):
        assert len(BROTLI_BOMB) < 2000  # hundreds of bytes that inflate to 500 MB
    with PeakMemory(visualizr.process) as memory:
        reply = video(visualizr, origins[1].url + path)
    print(f"{path}: +{memory.growth_mb:.1f} MB -> {reply.status_code} {reply.text}")
    assert memory.growth_mb < 100, f"visualizr grew {memory.growth_mb:.0f} MB"
    if path.startswith("/brotli"):
        assert reply.status_code == 422 and reply.json()["error"] == "fetch_failed"
        assert "Content-Encoding 'br'" in reply.json()["detail"]
    else:
        assert reply.status_code == 413 and reply.json()["error"] == "upload_too_large"
        assert str(UPLOAD_LIMIT) in reply.json()["detail"]


def test_a_dripping_body_is_cut_off_at_the_deadline(
    visualizr: Service, origins: tuple[Origin, Origin]
) -> None:
    started = time.monotonic()
    reply = video(visualizr, origins[1].url + "/drip-one.wav")
    elapsed = time.monotonic() - started
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"] == "fetch_failed"
    assert f"longer than {DEADLINE_S:g} s" in reply.json()["detail"]
    assert DEADLINE_S - 0.5 < elapsed < DEADLINE_S + 3, elapsed


def test_twelve_drips_meet_the_queue_bound(
    visualizr: Service, origins: tuple[Origin, Origin]
) -> None:
    def one(index: int) -> httpx.Response:
        return video(visualizr, f"{origins[1].url}/drip-{index}.wav")

    with ThreadPoolExecutor(12) as pool:
        replies = list(pool.map(one, range(12)))
    statuses = sorted(reply.status_code for reply in replies)
    busy = [reply for reply in replies if reply.status_code == 503]
    assert len(busy) >= 12 - MAX_QUEUE, statuses
    assert all(reply.json()["error"] == "queue_full" for reply in busy)
    assert all(reply.headers["retry-after"].isdigit() for reply in busy)
    assert set(statuses) <= {422, 503}, statuses


def test_allow_list_names_host_and_port_and_refusals_look_alike(
    visualizr: Service, origins: tuple[Origin, Origin]
) -> None:
    closed = free_port()
    # A closed port, Redis (a non-HTTP service), an HTTP server (visualizr itself), and the
    # allowed origin's host on another port: one answer, that tells nothing about the port.
    targets = [
        f"http://127.0.0.1:{closed}/a.wav",
        "http://127.0.0.1:6379/a.wav",
        f"{visualizr.url}/healthz",
        f"http://localhost:{origins[1].port}/speech.wav",  # same port, a name not on the list
        f"http://127.0.0.1:{origins[1].port + 1}/speech.wav",
    ]
    details = set()
    for target in targets:
        reply = video(visualizr, target)
        assert reply.status_code == 400, (target, reply.text)
        assert reply.json()["error"] == "host_not_allowed"
        details.add(reply.json()["detail"])
    assert len(details) == 1, details
    detail = details.pop()
    assert "not allowed" in detail
    for word in ("refused", "closed", "timeout", "HTTP", str(closed), "6379"):
        assert word not in detail


def test_vocalizr_key_goes_to_vocalizr_only(
    visualizr: Service, origins: tuple[Origin, Origin]
) -> None:
    vocalizr, other = origins
    for origin, path in ((vocalizr, "/speech-v.wav"), (other, "/speech-o.wav")):
        reply = video(visualizr, origin.url + path, timeout=120)
        assert reply.status_code == 200, reply.text
    assert vocalizr.seen_auth["/speech-v.wav"] == f"Bearer {VOCALIZR_KEY}"
    assert other.seen_auth["/speech-o.wav"] is None


def test_chunked_gigabyte_upload_is_cut_off_at_the_cap(visualizr: Service) -> None:
    boundary = "xyzzy"
    prefix = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    with PeakMemory(visualizr.process) as memory:
        result = chunked_upload(
            visualizr.url,
            "/v1/videos",
            content_type=f"multipart/form-data; boundary={boundary}",
            prefix=prefix,
            total_bytes=1 << 30,
            key=KEY,
        )
    assert result.status == 413, result
    assert b'"error":"upload_too_large"' in result.body
    assert result.sent_bytes < 2 * UPLOAD_LIMIT + 32 * (1 << 20), result.sent_bytes
    assert memory.growth_mb < 100


def test_every_route_but_health_and_file_ids_needs_the_key(visualizr: Service) -> None:
    with visualizr.client() as anonymous, visualizr.client("not-it") as wrong:
        assert anonymous.get("/healthz").status_code == 200
        for path in ("/v1/characters", "/metrics", "/docs", "/openapi.json", "/ui", "/redoc"):
            for client in (anonymous, wrong):
                reply = client.get(path)
                assert reply.status_code == 401, (path, reply.text)
                assert reply.json()["error"] == "unauthorized"
        assert anonymous.post("/v1/videos", json={}).status_code == 401
        # Files are open by id (browsers play them from chat replies); a wrong id is a 404.
        missing = anonymous.get("/files/0123456789abcdef0123456789abcdef.mp4")
        assert missing.status_code == 404
    with visualizr.client(KEY) as http:
        assert http.get("/v1/characters").json() == {"characters": ["einstein"]}
        assert http.get("/metrics").status_code == 200


BAD_BODIES: list[dict[str, object]] = [
    {"content": b"[" * 100_000, "headers": {"content-type": "application/json"}},
    {
        "content": b'{"audio_url": "http://127.0.0.1:1/a", "character": "\\ud800"}',
        "headers": {"content-type": "application/json"},
    },
    {"json": {"audio_url": 5, "portrait": ["einstein"]}},
    {"json": {"audio_url": "http://127.0.0.1:1/a.wav", "character": "../../etc"}},
    {"json": {"audio_url": "file:///proc/self/environ", "portrait": "einstein"}},
    {"files": {"audio": ("a.wav", b"RIFF....WAVEjunk")}, "data": {"character": "einstein"}},
    {"files": {"audio": ("a.wav", b"x")}, "data": {"character": "einstein", "fps": "many"}},
    {"files": {"portrait": ("p.png", b"\x89PNG\r\n\x1a\nbroken")}, "data": {"audio_url": "u"}},
    {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=x"}},
    {"content": b"hello", "headers": {"content-type": "text/plain"}},
]


@pytest.mark.parametrize("kwargs", BAD_BODIES)
def test_bad_input_is_a_clear_4xx_without_server_paths(
    visualizr: Service, workdir: Path, kwargs: dict[str, object]
) -> None:
    with visualizr.client(KEY) as http:
        reply = http.post("/v1/videos", **kwargs)  # type: ignore[arg-type]
    assert 400 <= reply.status_code < 500, reply.text
    body = reply.json()
    assert set(body) == {"error", "detail"} and body["detail"]
    for leak in (str(workdir), "/tmp", "/proc", "/work", "/root"):
        assert leak not in body["detail"], body["detail"]
