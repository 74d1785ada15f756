"""A byte cap on request bodies, counted while they stream in (chunked bodies included).

A declared `Content-Length` over the cap is refused before a byte is read; any other body is
counted as the app receives it, and past the cap the app's reading fails and the answer is a 413
instead of whatever the app made of the failure. So nothing past the cap is ever spooled to disk.
"""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatacter_common.service.errors import UploadTooLarge, error_response


class BodyTooLarge(Exception):
    """Raised inside the app's `receive` once the body passes the cap."""


class BodyLimit:
    """ASGI middleware: at most `max_bytes` of request body, else 413 `upload_too_large`."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, setting: str) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.setting = setting

    def _refusal(self, size: str) -> list[Message]:
        response = error_response(
            413,
            "upload_too_large",
            f"the request body is {size}; this service takes at most {self.max_bytes} bytes "
            f"({self.setting})",
        )
        start: Message = {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
        body: Message = {"type": "http.response.body", "body": response.body}
        return [start, body]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            for message in self._refusal(f"{int(declared)} bytes"):
                await send(message)
            return

        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's answer to a failed read; ours goes out instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            for message in self._refusal(f"over {self.max_bytes} bytes"):
                await send(message)


READ_CHUNK_BYTES = 1 << 20


async def read_limited(upload: UploadFile, limit: int, refusal: str) -> bytes:
    """An uploaded file's bytes, read a chunk at a time; past `limit` bytes, UploadTooLarge
    (413) with `refusal` as its detail, without reading the rest."""
    data = bytearray()
    while chunk := await upload.read(READ_CHUNK_BYTES):
        data.extend(chunk)
        if len(data) > limit:
            raise UploadTooLarge(refusal)
    return bytes(data)
