"""Fetching `audio_url` and portrait URLs: allow-listed by host and port, bounded in decoded
bytes and in the time of the whole fetch.

The allow-list is checked before any connection, and a refusal says only "not allowed": a
caller learns nothing about a port's state (closed, another protocol, another HTTP server).
Bodies are read raw and inflated here, at most the cap plus one byte, so a tiny gzip body that
inflates to gigabytes costs the cap, not the gigabytes; other encodings (brotli, zstd) are
refused. The deadline covers connecting, headers and every byte of the body.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import anyio
import httpx

from visualizr.errors import FetchFailed, HostNotAllowed, UploadTooLarge
from visualizr.settings import Settings, url_address

# zlib's window bits: 47 reads a gzip or a zlib header; 15 a zlib stream (HTTP's deflate).
DECODERS = {"gzip": 47, "x-gzip": 47, "deflate": 15}


def check_allowed(url: str, what: str, settings: Settings) -> None:
    """Refuse a URL whose (host, port) is not on the allow-list, before connecting."""
    if url_address(url) is None:
        raise HostNotAllowed(f"{what} must be an http(s) URL with a host", code="bad_url")
    if url_address(url) not in settings.audio_addresses():
        raise HostNotAllowed(
            f"{what} is not allowed: visualizr fetches only from the addresses in "
            "VISUALIZR_ALLOWED_AUDIO_HOSTS (default: vocalizr's); upload the file instead"
        )


async def fetch(url: str, what: str, settings: Settings) -> bytes:
    """GET an allow-listed URL: at most `max_upload_bytes` decoded, within `fetch_timeout_s`."""
    check_allowed(url, what, settings)
    headers = {"Accept-Encoding": "gzip, deflate, identity"}
    if settings.vocalizr_api_key is not None and settings.is_vocalizr(url):
        headers["Authorization"] = f"Bearer {settings.vocalizr_api_key.get_secret_value()}"
    deadline = settings.fetch_timeout_s
    try:
        with anyio.fail_after(deadline):
            return await _get(url, what, headers, settings.max_upload_bytes)
    except TimeoutError:
        raise FetchFailed(
            f"fetching {what} took longer than {deadline:g} s (VISUALIZR_FETCH_TIMEOUT_S)"
        ) from None
    except httpx.HTTPError as error:
        raise FetchFailed(f"could not fetch {what}: {type(error).__name__} {error}") from None


async def _get(url: str, what: str, headers: dict[str, str], limit: int) -> bytes:
    # No timeout per connect or read: the caller's deadline bounds the whole fetch, and says so.
    async with (
        httpx.AsyncClient(timeout=None, follow_redirects=False) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        if response.status_code != 200:
            raise FetchFailed(f"fetching {what} answered HTTP {response.status_code}")
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity", *DECODERS):
            raise FetchFailed(
                f"{what} came with Content-Encoding {encoding[:40]!r}; "
                "visualizr takes identity, gzip or deflate"
            )
        body = bytearray()
        async for piece in _decoded(response.aiter_raw(), DECODERS.get(encoding), limit):
            body.extend(piece)
            if len(body) > limit:
                raise UploadTooLarge(
                    f"{what} is larger than {limit} bytes (VISUALIZR_MAX_UPLOAD_BYTES)"
                )
        return bytes(body)


async def _decoded(
    raw: AsyncIterator[bytes], wbits: int | None, limit: int
) -> AsyncIterator[bytes]:
    """The body's bytes, inflated when compressed, never more than `limit + 1` in all."""
    if wbits is None:
        async for chunk in raw:
            yield chunk
        return
    inflater = zlib.decompressobj(wbits)
    produced = 0
    try:
        async for chunk in raw:
            data = chunk
            while data and produced <= limit:
                piece = inflater.decompress(data, limit + 1 - produced)
                produced += len(piece)
                yield piece
                data = inflater.unconsumed_tail
            if produced > limit:
                return
        yield inflater.flush()
    except zlib.error:
        raise FetchFailed("the fetched body does not inflate (broken gzip/deflate)") from None
