"""Who may use chattr and how much: sign-in pairs, telling clients apart, the fair-use gate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from chattr.access.hf_signin import HfSignIn, check_oauth_configured
from chattr.access.rate_limits import (
    FairShare,
    LimitReached,
    RateLimiter,
    open_rate_limiter,
    try_again_in,
)
from chattr.access.sign_in_throttle import SignInThrottle
from chattr.settings import Settings


def parse_auth(value: str) -> list[tuple[str, str]]:
    """`user:password,user2:password2` → pairs; a malformed entry is named by its position only,
    so the error never shows a password."""
    pairs = []
    for index, entry in enumerate(value.split(","), start=1):
        user, sep, password = entry.strip().partition(":")
        if not sep or not user or not password:
            raise ValueError(
                f"CHATTR_AUTH entry {index} is not `user:password` "
                "(comma-separated pairs; neither part may be empty)"
            )
        pairs.append((user, password))
    return pairs


def auth_pairs(settings: Settings) -> list[tuple[str, str]] | None:
    """The sign-in pairs CHATTR_AUTH sets, or None when the page is open."""
    if settings.auth is None or not settings.auth.get_secret_value().strip():
        return None
    return parse_auth(settings.auth.get_secret_value())


def request_keys(request: Any, session_id: str, user: str | None = None) -> list[str]:
    """The keys a request is counted under: its client's address (as chattr's ForwardedHeaders
    middleware left it: a trusted proxy's X-Forwarded-For already applied), its session and,
    where people sign in with Hugging Face, its user."""
    client = getattr(request, "client", None) if request is not None else None
    keys = [f"addr:{getattr(client, 'host', '') or 'unknown'}"]
    if session_id:
        keys.append(f"session:{session_id}")
    if user:
        keys.append(f"user:{user}")
    return keys


def sign_in_throttle(settings: Settings) -> SignInThrottle:
    """Failed sign-ins counted per address and per user name (CHATTR_SIGNIN_*)."""
    return SignInThrottle.open(
        settings.redis_url,
        prefix=settings.redis_prefix,
        failures=settings.signin_failures,
        user_failures=settings.signin_user_failures,
        window_s=settings.signin_window_s,
        lock_s=settings.signin_lock_s,
    )


def hf_sign_in(settings: Settings, throttle: SignInThrottle | None = None) -> HfSignIn | None:
    """Who is signed in with Hugging Face, where CHATTR_HF_SIGNIN asks for it (else None)."""
    if not settings.hf_signin:
        return None
    check_oauth_configured()
    return HfSignIn(settings.hf_endpoint, throttle=throttle)


def upload_limiter(settings: Settings) -> RateLimiter | None:
    """The bytes of uploads one client may send per minute (CHATTR_UPLOAD_MB_PER_MINUTE), counted
    in KiB."""
    return open_rate_limiter(
        settings.redis_url,
        settings.upload_mb_per_minute * 1024,
        60.0,
        prefix=settings.redis_prefix,
        name="uploads",
    )


class Gate:
    """The fair-use checks a turn, an import or an upload passes before any work is done."""

    def __init__(
        self,
        *,
        turns: RateLimiter | None,
        imports: RateLimiter | None,
        fair_share: FairShare,
        sign_in: HfSignIn | None = None,
        uploads: RateLimiter | None = None,
        throttle: SignInThrottle | None = None,
    ) -> None:
        self.turns = turns
        self.imports = imports
        self.fair_share = fair_share
        self.sign_in = sign_in
        self.uploads = uploads  # KiB a minute; applied by chattr.access.upload_guard.UploadGuard
        self.throttle = throttle  # failed sign-ins; applied to /login by SignInGuard

    @classmethod
    def from_settings(cls, settings: Settings) -> Gate:
        prefix = settings.redis_prefix
        throttle = sign_in_throttle(settings)
        return cls(
            turns=open_rate_limiter(
                settings.redis_url, settings.turns_per_minute, 60.0, prefix=prefix, name="turns"
            ),
            imports=open_rate_limiter(
                settings.redis_url, settings.imports_per_hour, 3600.0, prefix=prefix, name="imports"
            ),
            fair_share=FairShare(
                settings.concurrency_limit, settings.turns_per_client, settings.queue_size
            ),
            sign_in=hf_sign_in(settings, throttle),
            uploads=upload_limiter(settings),
            throttle=throttle,
        )

    def keys(self, request: Any, session_id: str) -> list[str]:
        """The request's keys; SignInRequired where sign-in is required and it has none."""
        user = self.sign_in.require(request) if self.sign_in is not None else None
        return request_keys(request, session_id, user)

    @asynccontextmanager
    async def turn(self, request: Any, session_id: str) -> AsyncIterator[None]:
        """Admit one turn (a rate-limit hit, then a turn slot) for its whole duration, or raise
        LimitReached saying when to retry (SignInRequired without the sign-in it needs)."""
        keys = await asyncio.to_thread(self.keys, request, session_id)
        if self.turns is not None:
            wait = await asyncio.to_thread(self.turns.hit, keys)
            if wait is not None:
                raise LimitReached(
                    f"Too many messages: at most {self.turns.limit} a minute "
                    f"(CHATTR_TURNS_PER_MINUTE); {try_again_in(wait)}.",
                    wait,
                )
        async with self.fair_share.hold(keys):
            yield

    def check_import(self, request: Any, session_id: str) -> None:
        """Count one import, or raise LimitReached saying when to retry."""
        keys = self.keys(request, session_id)  # sign-in first, whatever the limit
        if self.imports is None:
            return
        wait = self.imports.hit(keys)
        if wait is not None:
            raise LimitReached(
                f"Too many imports: at most {self.imports.limit} an hour "
                f"(CHATTR_IMPORTS_PER_HOUR); {try_again_in(wait)}.",
                wait,
            )
