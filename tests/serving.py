"""Real servers for the services' tests: a free port, an app under uvicorn in a thread, ready
once its `/healthz` says so."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from starlette.types import ASGIApp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(
    app: ASGIApp, host: str, port: int, *, name: str, ready_timeout_s: float = 120.0
) -> Iterator[str]:
    """Serve `app` until the block ends; yields its URL once `/healthz` answers 200.

    A failed engine load (`/healthz` says `error`), a server thread that died, or no answer
    within `ready_timeout_s` is an error naming the service, not a hang.
    """
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + ready_timeout_s
    try:
        while True:
            try:
                health = httpx.get(f"{url}/healthz", timeout=5)
                if health.status_code == 200:
                    break
                if health.json().get("status") == "error":
                    raise RuntimeError(f"{name} failed to load: {health.text}")
            except httpx.TransportError:
                pass
            if not thread.is_alive():
                raise RuntimeError(f"{name}'s server stopped before it was ready at {url}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not become ready at {url}")
            time.sleep(0.1)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
