"""A small reverse proxy for the tests: what nginx or a Space's ingress does in front of chattr.

It forwards every request to the upstream with the upstream's own Host (as nginx does by
default), telling the original scheme, host, path prefix and client in X-Forwarded-* headers;
responses stream back unbuffered (Gradio's server-sent events, media Range requests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

# Hop-by-hop headers (RFC 9110 §7.6.1) and what the proxy sets itself.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
    }
)
# Set by the side that sends the body again.
REQUEST_ONLY = frozenset({b"host", b"content-length"})
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def reverse_proxy(upstream: str, *, prefix: str = "", proto: str | None = None) -> Starlette:
    """An ASGI app forwarding `prefix/…` to `upstream/…`; `proto` overrides the scheme it tells
    (as a TLS-terminating proxy tells `https`)."""
    prefix = prefix.rstrip("/")
    client = httpx.AsyncClient(base_url=upstream, timeout=httpx.Timeout(120.0))
    requests: list[str] = []

    async def forward(request: Request) -> Response:
        path = request.url.path
        if prefix:
            if path != prefix and not path.startswith(prefix + "/"):
                return PlainTextResponse(f"only {prefix}/ is served here", status_code=404)
            path = path[len(prefix) :] or "/"
        requests.append(path)
        headers = [
            (k, v)
            for k, v in request.headers.raw
            if k.lower() not in HOP_BY_HOP and k.lower() not in REQUEST_ONLY
        ]
        headers += [
            (b"x-forwarded-host", request.headers["host"].encode()),
            (b"x-forwarded-proto", (proto or request.url.scheme).encode()),
            (b"x-forwarded-for", (request.client.host if request.client else "").encode()),
        ]
        if prefix:
            headers.append((b"x-forwarded-prefix", prefix.encode()))
        target = path + (f"?{request.url.query}" if request.url.query else "")
        body = await request.body()
        upstream_request = client.build_request(
            request.method, target, headers=headers, content=body or None
        )
        response = await client.send(upstream_request, stream=True)
        streamed = StreamingResponse(
            response.aiter_raw(),
            status_code=response.status_code,
            background=BackgroundTask(response.aclose),
        )
        streamed.raw_headers = [
            (k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP
        ]
        return streamed

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = Starlette(routes=[Route("/{path:path}", forward, methods=METHODS)], lifespan=lifespan)
    app.state.requests = requests
    return app


def forwarding_transport(upstream: str, *, host: str, proto: str = "https") -> Any:
    """An httpx transport that is that proxy on the client's side: a request for
    `proto://host/…` goes to `upstream/…` with the X-Forwarded-* headers such a proxy adds."""
    inner = httpx.HTTPTransport()
    base = httpx.URL(upstream)

    class Forwarding(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            assert request.url.host == host.split(":")[0], f"not for this proxy: {request.url}"
            request.url = request.url.copy_with(scheme=base.scheme, host=base.host, port=base.port)
            request.headers["host"] = f"{base.host}:{base.port}"
            request.headers["x-forwarded-host"] = host
            request.headers["x-forwarded-proto"] = proto
            return inner.handle_request(request)

        def close(self) -> None:
            inner.close()

    return Forwarding()
