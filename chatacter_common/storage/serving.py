"""Serving a stored file over HTTP, from whichever replica the request reached.

A bucket's files are relayed, not redirected to presigned URLs: a reply's URL stays under the
page's (or the service's) own origin and keeps working for the whole retention period, the store
need not be reachable from browsers, and Range requests (seeking in a video) answer 206 as a
file on disk does. A file on disk is opened before anything is answered and read through that
handle, so retention deleting it mid-request cannot cut a response short: a request gets the
whole file or a 404.
"""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate
from typing import BinaryIO

import anyio.to_thread
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from chatacter_common.storage.base import Storage, StoredObject

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The byte range a `Range` header asks of `size` bytes, as (start, end exclusive); None for
    the whole file (no header, one we do not serve: several ranges, other units); ValueError when
    it cannot be satisfied (416)."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0:
            raise ValueError("an empty suffix range")
        return max(0, size - length), size
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    if start >= size or end <= start:
        raise ValueError(f"range {header!r} is outside {size} bytes")
    return start, end


async def serve_stored(
    storage: Storage, name: str, request: Request, media_type: str | None = None
) -> Response | None:
    """The file `name` as a response (206 for a Range), or None when it is not stored. A store
    that fails raises StorageError (the caller answers 503)."""
    path = storage.local_path(name)
    handle: BinaryIO | None = None
    read: Callable[[str, int, int], AsyncIterator[bytes]] = storage.stream
    if path is not None:
        try:
            handle = await anyio.to_thread.run_sync(open, path, "rb")
        except OSError:  # never made, or gone past its retention
            return None
        info = os.fstat(handle.fileno())
        stored: StoredObject | None = StoredObject(
            name, info.st_size, info.st_mtime, f'"{info.st_mtime_ns:x}-{info.st_size:x}"'
        )
        read = _reader(handle)
    else:
        stored = await anyio.to_thread.run_sync(storage.stat, name)
    if stored is None:
        return None
    response = _answer(stored, name, request, media_type, read)
    if handle is not None and not isinstance(response, StreamingResponse):
        handle.close()  # nothing to stream (304, 416, empty): the body's reader never runs
    return response


def _reader(handle: BinaryIO) -> Callable[[str, int, int], AsyncIterator[bytes]]:
    """Reads of an open file, closing it when the body is done (or abandoned)."""

    async def stream(_name: str, start: int, end: int) -> AsyncIterator[bytes]:
        try:
            position = start
            while position < end:
                size = min(end - position, 1024 * 1024)
                chunk = await anyio.to_thread.run_sync(os.pread, handle.fileno(), size, position)
                if not chunk:
                    return
                position += len(chunk)
                yield chunk
        finally:
            handle.close()

    return stream


def _answer(
    stored: StoredObject,
    name: str,
    request: Request,
    media_type: str | None,
    read: Callable[[str, int, int], AsyncIterator[bytes]],
) -> Response:
    headers = {
        "accept-ranges": "bytes",
        "last-modified": formatdate(stored.modified, usegmt=True),
    }
    if stored.etag:
        headers["etag"] = stored.etag
        if request.headers.get("if-none-match") == stored.etag:
            return Response(status_code=304, headers=headers)
    media_type = media_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    wanted = None
    if_range = request.headers.get("if-range")
    if if_range is None or if_range == stored.etag:
        try:
            wanted = parse_range(request.headers.get("range"), stored.size)
        except ValueError:
            return Response(
                status_code=416, headers={**headers, "content-range": f"bytes */{stored.size}"}
            )
    start, end = wanted or (0, stored.size)
    headers["content-length"] = str(end - start)
    if wanted is not None:
        headers["content-range"] = f"bytes {start}-{end - 1}/{stored.size}"
    if end == start:
        return Response(b"", headers=headers, media_type=media_type)
    return StreamingResponse(
        read(name, start, end),
        status_code=206 if wanted is not None else 200,
        headers=headers,
        media_type=media_type,
    )
