"""Bearer keys: with a key set, every route but the open ones needs `Authorization: Bearer`.

Open: the probes `/livez`, `/readyz`, `/healthz` (for orchestrators) and `/files/<id>` (produced
files, named by 128-bit random ids: the id is the capability, and browsers load these URLs
straight from chat replies, where they cannot send a header). Everything else — `/v1/*`,
`/metrics`, `/docs`, `/openapi.json`, `/ui` — is guarded. Keys are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from pydantic import SecretStr
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from chatacter_common.service.errors import error_response

OPEN_PATH = re.compile(r"/livez|/readyz|/healthz|/files/[^/]+")


def parse_keys(setting: SecretStr | None) -> tuple[str, ...]:
    """The keys of a setting: one key, or several separated by commas (one per caller)."""
    if setting is None:
        return ()
    return tuple(key.strip() for key in setting.get_secret_value().split(",") if key.strip())


def route_path(scope: Scope) -> str:
    """The path inside this app, also when it is mounted under a prefix (the Space)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def presented_key(scope: Scope) -> str | None:
    header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def matching_key(keys: tuple[str, ...], token: str | None) -> str | None:
    """The configured key equal to `token` (every key compared, in constant time), or None."""
    if token is None:
        return None
    found = None
    for key in keys:  # no early exit: the time taken does not tell which key came close
        if hmac.compare_digest(key.encode(), token.encode()):
            found = key
    return found


def caller_id(connection: HTTPConnection) -> str:
    """Who is calling: the key they presented (a fingerprint of it), else their address."""
    key = connection.scope.get("state", {}).get("caller_key")
    if isinstance(key, str):
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:16]
    client = connection.client
    return f"addr:{client.host if client else 'unknown'}"


class BearerAuth:
    """ASGI middleware: the guard of every route but the open ones; without keys, a no-op."""

    def __init__(self, app: ASGIApp, *, keys: tuple[str, ...], setting: str) -> None:
        self.app = app
        self.keys = keys
        self.setting = setting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.keys:
            await self.app(scope, receive, send)
            return
        key = matching_key(self.keys, presented_key(scope))
        if key is not None:
            scope.setdefault("state", {})["caller_key"] = key
            await self.app(scope, receive, send)
            return
        if OPEN_PATH.fullmatch(route_path(scope)):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        detail = (
            "this route needs `Authorization: Bearer <key>`"
            if presented_key(scope) is None
            else "the bearer key is not valid"
        )
        response = error_response(
            401,
            "unauthorized",
            f"{detail} (the service's {self.setting})",
            {"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)
