"""Signing out ends the person's sessions on the server, on every replica.

Gradio's `/logout` ends sign-ins in its own process only: a password sign-in's token lives in
that process's memory (its cookie name is per process too), and a Hugging Face sign-in lives in a
signed cookie that any replica with the same OAuth secret accepts, with nothing on the server to
revoke. So a sign-out is also written down, per user, with its time (in Redis when there is one,
where every replica reads it), and `SignOutGuard` treats every session of that user begun before
it as signed out: a password token is dropped from Gradio's table, a Hugging Face session loses
its sign-in. Like Gradio's own `/logout`, it ends all of the person's sessions ("sign out
everywhere"), not only the browser that asked.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any, Protocol

import anyio
import redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chattr.access.hf_signin import SESSION_KEY, session_user

log = logging.getLogger(__name__)

# Longer than any session lives: Gradio's password tokens last as long as its process.
REMEMBER_S = 30 * 86_400
TOKEN_COOKIE = "access-token-"


class SignOuts(Protocol):
    """When each person last signed out."""

    def record(self, user: str) -> None: ...

    def signed_out_at(self, user: str) -> float | None: ...


def _user_key(user: str) -> str:
    return hashlib.sha256(user.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class InProcessSignOuts:
    """This process's own record (one replica: nothing to share)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._at: dict[str, float] = {}
        self._lock = threading.Lock()

    def record(self, user: str) -> None:
        with self._lock:
            self._at[_user_key(user)] = self._clock()

    def signed_out_at(self, user: str) -> float | None:
        with self._lock:
            return self._at.get(_user_key(user))


class RedisSignOuts:
    """The record in Redis, read by every replica. Redis unreachable: a sign-out still ends the
    sessions Gradio ends itself (logged), and checks pass rather than signing everyone out."""

    def __init__(self, url: str, *, prefix: str, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis.Redis.from_url(
            url, socket_connect_timeout=1.0, socket_timeout=2.0, decode_responses=True
        )
        self._prefix = f"{prefix}:signout"
        self._clock = clock

    def record(self, user: str) -> None:
        try:
            self._redis.set(f"{self._prefix}:{_user_key(user)}", repr(self._clock()), ex=REMEMBER_S)
        except redis.RedisError as exc:
            log.warning("sign-out not shared with other replicas, Redis unreachable: %s", exc)

    def signed_out_at(self, user: str) -> float | None:
        try:
            value = self._redis.get(f"{self._prefix}:{_user_key(user)}")
        except redis.RedisError as exc:
            log.warning("sign-outs not checked, Redis unreachable: %s", exc)
            return None
        return float(value) if isinstance(value, str) else None

    def close(self) -> None:
        self._redis.close()


def open_sign_outs(redis_url: str | None, *, prefix: str) -> SignOuts:
    return RedisSignOuts(redis_url, prefix=prefix) if redis_url else InProcessSignOuts()


def oauth_issued_at(info: dict[str, Any]) -> float:
    """When a Hugging Face sign-in began (its token's expiry less its lifetime); 0 if unknown,
    so any sign-out of its user ends it."""
    expires_at, expires_in = info.get("expires_at"), info.get("expires_in")
    if isinstance(expires_at, int | float) and isinstance(expires_in, int | float):
        return float(expires_at - expires_in)
    return 0.0


class SignOutGuard:
    """ASGI middleware inside Gradio's app (inside its session middleware): records sign-outs
    (`GET /logout`) and ends, on each request, the sessions begun before their user's last
    sign-out. `tokens` is Gradio's own table of password sign-ins (token → user)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        sign_outs: SignOuts,
        tokens: Callable[[], MutableMapping[str, str]],
        clock: Callable[[], float] = time.time,
        threads: int = 4,
    ) -> None:
        self.app = app
        self.sign_outs = sign_outs
        self._tokens = tokens
        self._clock = clock
        self._issued: dict[str, float] = {}  # password token -> when it was made, here
        self._threads = anyio.CapacityLimiter(threads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", "")).rstrip("/")
        token = _token_cookie(scope)
        user = self._tokens().get(token) if token else None
        session = scope.get("session")
        oauth_user = session_user(session) if isinstance(session, dict) else None
        if path == "/logout" and scope.get("method") == "GET":
            for name in {user, oauth_user} - {None}:
                assert name is not None
                await anyio.to_thread.run_sync(self.sign_outs.record, name, limiter=self._threads)
        else:
            if token and user is not None:
                await self._check_token(token, user)
            if oauth_user is not None and isinstance(session, dict):
                await self._check_oauth(session, oauth_user)
        if path == "/login" and scope.get("method") == "POST":
            await self.app(scope, receive, self._noting_tokens(send))
            return
        await self.app(scope, receive, send)

    async def _signed_out_at(self, user: str) -> float | None:
        at: float | None = await anyio.to_thread.run_sync(
            self.sign_outs.signed_out_at, user, limiter=self._threads
        )
        return at

    async def _check_token(self, token: str, user: str) -> None:
        issued = self._issued.get(token)
        signed_out = await self._signed_out_at(user)
        if signed_out is not None and (issued is None or issued <= signed_out):
            self._tokens().pop(token, None)
            self._issued.pop(token, None)

    async def _check_oauth(self, session: dict[str, Any], user: str) -> None:
        signed_out = await self._signed_out_at(user)
        info = session.get(SESSION_KEY)
        if (
            signed_out is not None
            and isinstance(info, dict)
            and oauth_issued_at(info) <= signed_out
        ):
            session.pop(SESSION_KEY, None)  # the session cookie is rewritten without it

    def _noting_tokens(self, send: Send) -> Send:
        """Notes when each password token Gradio hands out was made."""

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                for name, value in message.get("headers") or []:
                    if name.lower() == b"set-cookie" and value.startswith(TOKEN_COOKIE.encode()):
                        token = value.split(b";", 1)[0].split(b"=", 1)[1].decode("latin-1")
                        self._note(token)
            await send(message)

        return noting

    def _note(self, token: str) -> None:
        if len(self._issued) > 10_000:
            known = self._tokens()
            self._issued = {t: at for t, at in self._issued.items() if t in known}
        self._issued[token] = self._clock()


def _token_cookie(scope: Scope) -> str | None:
    """Gradio's password-sign-in token from the request's cookies (either of its two names)."""
    for header, value in scope.get("headers") or []:
        if header == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, found = part.strip().partition("=")
                if key.startswith(TOKEN_COOKIE) and found:
                    return str(found)
    return None
