"""Serving a stored file over HTTP, from whichever replica the request reached.

A bucket's files are relayed, not redirected to presigned URLs: a reply's URL stays under the
page's (or the service's) own origin and keeps working for the whole retention period, the store
need not be reachable from browsers, and Range requests (seeking in a video) answer 206 as a
file on disk does. A folder's files are served as before (Starlette's FileResponse).
"""

from __future__ import annotations

import mimetypes
import re
from email.utils import formatdate

import anyio.to_thread
from fastapi import Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from chatacter_common.storage.base import Storage

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
    if path is not None:
        return FileResponse(path, media_type=media_type) if path.is_file() else None
    stored = await anyio.to_thread.run_sync(storage.stat, name)
    if stored is None:
        return None
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
        storage.stream(name, start, end),
        status_code=206 if wanted is not None else 200,
        headers=headers,
        media_type=media_type,
    )
