"""Raw uploads bounded: `POST …/upload` needs a signed-in person where sign-in is on, and its
size counts against the client's upload budget (CHATTR_UPLOAD_MB_PER_MINUTE)."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

from chattr.access.hf_signin import SIGN_IN_FIRST, HfSignIn
from chattr.access.rate_limits import LimitReached, RateLimiter, try_again_in

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class UploadGuard:
    """ASGI middleware inside Gradio's app: `POST …/upload` needs a signed-in person (when
    `sign_in` is set), and its size counts against the client's upload budget (`uploads`, in
    KiB: CHATTR_UPLOAD_MB_PER_MINUTE). A body of unknown length is counted at `max_bytes`, the
    most Gradio accepts.

    It sits inside Gradio's session middleware, so the page's sign-in is already decoded.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        sign_in: HfSignIn | None,
        uploads: RateLimiter | None,
        max_bytes: int,
    ) -> None:
        self.app = app
        self.sign_in = sign_in
        self.uploads = uploads
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or not str(scope.get("path", "")).rstrip("/").endswith("/upload")
        ):
            await self.app(scope, receive, send)
            return
        keys = [f"addr:{(scope.get('client') or ('unknown',))[0]}"]
        if self.sign_in is not None:
            from starlette.requests import Request

            try:
                name = await asyncio.to_thread(self.sign_in.user, Request(scope))
            except LimitReached as exc:  # too many tokens nobody owns from this address
                await _refuse(send, 429, str(exc), retry_after_s=exc.retry_after_s)
                return
            if name is None:
                await _refuse(send, 401, SIGN_IN_FIRST)
                return
            keys.append(f"user:{name}")
        if self.uploads is not None:
            size = _content_length(scope)
            kib = math.ceil((self.max_bytes if size is None else size) / 1024)
            wait = await asyncio.to_thread(self.uploads.hit, keys, kib)
            if wait is not None:
                await _refuse(
                    send,
                    429,
                    f"Too many uploads: at most {self.uploads.limit // 1024} MB a minute "
                    f"(CHATTR_UPLOAD_MB_PER_MINUTE); {try_again_in(wait)}.",
                    retry_after_s=wait,
                )
                return
        await self.app(scope, receive, send)


def _content_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            try:
                return max(0, int(value))
            except ValueError:
                return None
    return None


async def _refuse(send: Any, status: int, message: str, retry_after_s: float | None = None) -> None:
    body = json.dumps({"error": message, "detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after_s is not None:
        headers.append((b"retry-after", str(max(1, round(retry_after_s))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
