"""chattr's address as the person's browser or script reached it, for the media URLs of a reply.

A reply's URLs must work where the request came from: behind a reverse proxy that is the proxy's
scheme, host and path prefix, which only the proxy knows and tells in `X-Forwarded-*` headers.
Those headers are honoured from trusted proxies only (`CHATTR_TRUSTED_PROXIES`), and they are
applied to the request itself, here, once: the URLs Gradio builds for the page and the ones a turn
builds then agree. From anyone else they are dropped, so a client cannot choose the host that
later replies point at.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from chattr.settings import Network, parse_trusted

__all__ = ["ForwardedHeaders", "Network", "parse_trusted", "request_base_url"]

FORWARDED_HEADERS = frozenset(
    {b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-prefix"}
)
# A host[:port] as a proxy may name it; anything else (spaces, slashes, '@') is refused.
HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
PREFIX = re.compile(r"(/[A-Za-z0-9._~%!$&'()*+,;=:@-]+)+")


def _first(value: str) -> str:
    # A chain of proxies appends: the first value is what the outermost one was asked for.
    return value.split(",")[0].strip()


class ForwardedHeaders:
    """ASGI middleware: a trusted proxy's `X-Forwarded-Proto/Host/Prefix/For` become the request's
    scheme, Host, root path and client; from any other peer those headers are removed."""

    def __init__(self, app: ASGIApp, trusted: tuple[Network, ...] | None) -> None:
        self.app = app
        self.trusted = trusted

    def is_trusted(self, peer: str | None) -> bool:
        if self.trusted is None:
            return True
        if not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False  # a Unix socket or a test client: not a proxy we know
        return any(address in network for network in self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        forwarded = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in headers
            if name in FORWARDED_HEADERS
        }
        if not forwarded:
            await self.app(scope, receive, send)
            return
        scope = dict(scope)
        kept = [(n, v) for n, v in headers if n not in FORWARDED_HEADERS]
        client = scope.get("client")
        if self.is_trusted(client[0] if client else None):
            kept = self._apply(scope, kept, forwarded)
        scope["headers"] = kept
        await self.app(scope, receive, send)

    def _apply(
        self, scope: dict[str, Any], headers: list[tuple[bytes, bytes]], forwarded: dict[str, str]
    ) -> list[tuple[bytes, bytes]]:
        proto = _first(forwarded.get("x-forwarded-proto", "")).lower()
        if proto in ("http", "https"):
            websocket = scope["type"] == "websocket"
            scope["scheme"] = {"http": "ws", "https": "wss"}[proto] if websocket else proto
        host = _first(forwarded.get("x-forwarded-host", ""))
        if HOST.fullmatch(host):
            headers = [(n, v) for n, v in headers if n != b"host"]
            headers.append((b"host", host.encode("latin-1")))
        prefix = _first(forwarded.get("x-forwarded-prefix", "")).rstrip("/")
        if PREFIX.fullmatch(prefix):
            # As uvicorn's --root-path does: the path keeps the prefix, routing strips it.
            scope["root_path"] = prefix + scope.get("root_path", "")
            scope["path"] = prefix + scope["path"]
            if scope.get("raw_path") is not None:
                scope["raw_path"] = prefix.encode("latin-1") + scope["raw_path"]
        chain = [a.strip() for a in forwarded.get("x-forwarded-for", "").split(",") if a.strip()]
        if chain:
            scope["client"] = (self._client(chain, scope.get("client")), 0)
        return headers

    def _client(self, chain: list[str], peer: tuple[str, int] | None) -> str:
        """The client in an X-Forwarded-For chain: walking from the right (the hops our proxies
        added), the first address that is not one of them. Trusting every peer (a Space's own
        front proxy), only the hop that proxy added is believed. A garbled hop ends the walk at
        the last address that could be checked."""
        client = peer[0] if peer else "unknown"
        for hop in reversed(chain):
            if not _is_address(hop):
                break
            client = hop
            if self.trusted is None or not self.is_trusted(hop):
                break
        return client


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def request_base_url(request: Any) -> str | None:
    """`scheme://host/prefix` of a request (a gr.Request or a Starlette one), or None."""
    inner = getattr(request, "request", request)  # gr.Request wraps the Starlette request
    base = getattr(inner, "base_url", None)
    if base is None:
        return None
    return str(base).rstrip("/")
