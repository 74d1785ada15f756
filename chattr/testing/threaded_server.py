"""An ASGI app served by uvicorn on a free localhost port in a background thread.

For tests, benchmarks and the fake LLM: real HTTP on loopback, started and stopped in-process.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn


class ThreadedServer:
    """Serve `app` on 127.0.0.1 (port 0: a free one) until `stop()`."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, lifespan: str = "on"):
        # Keep-alive and streaming connections (Gradio's) would hold a graceful shutdown open.
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan=lifespan,  # type: ignore[arg-type]
            timeout_graceful_shutdown=1,
            proxy_headers=False,  # as chattr serves: its own middleware judges X-Forwarded-*
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self, timeout: float = 60.0) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    @property
    def port(self) -> int:
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
