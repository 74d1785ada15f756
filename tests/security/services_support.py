"""Helpers for the attack tests on vocalizr and visualizr: the real service as a child process
(so its memory is its own, measured with psutil), bombs, and raw-socket uploads."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO.parent / "shared" / "assets"
SPEECH = ASSETS / "speech_en_16k.wav"
PHOTO = ASSETS / "portrait_photo_bw.jpg"
MB = 1 << 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """A running service process: its URL and psutil handle."""

    url: str
    process: psutil.Process
    log: Path

    def client(self, key: str | None = None, timeout: float = 60.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


@contextlib.contextmanager
def service_process(
    program: str, env: dict[str, str], workdir: Path, timeout_s: float = 240.0
) -> Iterator[Service]:
    """`python -m program` on a free port with only `env` of its own settings; until healthy."""
    port = free_port()
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("VOCALIZR_", "VISUALIZR_", "CHATTR_"))
    }
    log = workdir / f"{program}.log"
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", program, "--host", "127.0.0.1", "--port", str(port)],
            env={**clean, **env, "PYTHONPATH": str(REPO)},
            cwd=workdir,  # no .env of the repository is read
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            assert child.poll() is None, f"{program} exited:\n{log.read_text()[-3000:]}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"{program} not healthy:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)
        yield Service(url, psutil.Process(child.pid), log)
    finally:
        child.terminate()
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)


class PeakMemory:
    """The peak RSS growth of a process over a block: the kernel's high-water mark (reset at
    the start) and, where that cannot be reset, samples every few milliseconds."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def _high_water(self) -> int | None:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def __enter__(self) -> PeakMemory:
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")  # resets VmHWM
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        hwm = self._high_water()
        if hwm is not None and hwm >= self.baseline:
            self.peak = max(self.peak, hwm)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.baseline) / MB


def flac_bomb(lie_about_length: bool = False) -> bytes:
    """10 minutes of 96 kHz stereo silence as FLAC: about 223 KB, 440 MB once decoded to float32.

    With `lie_about_length`, STREAMINFO says "length unknown", so only a capped decode can tell.
    """
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((96000 * 600, 2), np.int16), 96000, format="FLAC")
    data = bytearray(buffer.getvalue())
    if lie_about_length:
        # fLaC, a 4-byte block header, then STREAMINFO: total samples are its bits 108..143.
        data[21] &= 0xF0
        data[22:26] = b"\0\0\0\0"
    return bytes(data)


@dataclass
class ChunkedUpload:
    status: int | None
    body: bytes
    sent_bytes: int
    elapsed_s: float


def chunked_upload(
    url: str,
    path: str,
    *,
    content_type: str,
    prefix: bytes,
    total_bytes: int,
    key: str | None = None,
    chunk: int = 256 * 1024,
) -> ChunkedUpload:
    """POST a chunked body of `total_bytes` over a raw socket, stopping as soon as an answer
    arrives (or the server closes); reports how much was sent before that."""
    host, port = url.removeprefix("http://").split(":")
    started = time.monotonic()
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        auth = f"Authorization: Bearer {key}\r\n" if key else ""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
            f"{auth}Transfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head.encode())
        payload = b"\0" * chunk
        first = True
        sock.setblocking(False)
        answer = b""
        while sent < total_bytes:
            data = prefix + payload[len(prefix) :] if first else payload
            first = False
            frame = f"{len(data):x}\r\n".encode() + data + b"\r\n"
            try:
                view = memoryview(frame)
                while view:
                    try:
                        count = sock.send(view)
                        view = view[count:]
                    except BlockingIOError:
                        answer += _read_some(sock)
                        if answer:
                            break
                        time.sleep(0.001)
                if answer:
                    break
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(data)
            answer += _read_some(sock)
            if answer:
                break
        sock.setblocking(True)
        sock.settimeout(10)
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in answer or len(answer) < _expected(answer):
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
    elapsed = time.monotonic() - started
    if not answer.startswith(b"HTTP/1.1 "):
        return ChunkedUpload(None, answer, sent, elapsed)
    status = int(answer.split(b" ", 2)[1])
    return ChunkedUpload(status, answer.partition(b"\r\n\r\n")[2], sent, elapsed)


def _read_some(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except (BlockingIOError, InterruptedError):
        return b""
    except (ConnectionResetError, BrokenPipeError):
        return b""


def _expected(answer: bytes) -> int:
    head, _, _ = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(head) + 4 + int(line.split(b":")[1])
    return len(answer)
