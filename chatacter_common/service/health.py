"""Whether a service can serve: its engine loading, ready, or failed to load; and `/healthz`.

The engine loads in a worker thread after start-up, so `/healthz` answers at once: 200 with the
engine and its device once it is ready, 503 with Retry-After while it loads, 503 with the reason
(server paths taken out) when loading failed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from fastapi.responses import JSONResponse

from chatacter_common.service.errors import redact_paths

log = logging.getLogger(__name__)


class Health:
    """Where loading the engine stands; set once by the loader, read by every request."""

    def __init__(self, *, retry_after_s: int = 1) -> None:
        self.retry_after_s = retry_after_s
        self.engine: str | None = None
        self.device: str | None = None
        self.load_error: str | None = None
        # Set when loading has ended, either way: what waits for it needs no polling.
        self.settled = threading.Event()

    @property
    def ready(self) -> bool:
        return self.engine is not None

    def load(self, load: Callable[[], tuple[str, str]], failure: str) -> bool:
        """Run the blocking `load`, which returns (engine, device), and record how it went.

        A failure is logged and kept as `"<failure>: <error>"`, never raised: the service stays up
        to say so on `/healthz` and in its 503s.
        """
        try:
            engine, device = load()
        except Exception as error:
            log.exception("%s", failure)
            self.load_error = redact_paths(f"{failure}: {error}")
            return False
        else:
            self.engine, self.device = engine, device
            return True
        finally:
            self.settled.set()

    def answer(self) -> JSONResponse:
        """The `/healthz` answer for the state now."""
        if self.engine is not None:
            return JSONResponse({"status": "ok", "engine": self.engine, "device": self.device})
        if self.load_error is not None:
            body = {"status": "error", "error": "engine_unavailable", "detail": self.load_error}
            return JSONResponse(body, status_code=503)
        return JSONResponse(
            {"status": "loading"},
            status_code=503,
            headers={"Retry-After": str(self.retry_after_s)},
        )
