"""Who may use chattr and how much: sign-in pairs, telling clients apart, the fair-use gate."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from chattr.ratelimit import FairShare, RateLimiter, Refused, open_rate_limiter, try_again_in
from chattr.settings import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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


def parse_networks(value: str) -> list[Network]:
    """`10.0.0.0/8, 127.0.0.1` → networks; a bad entry is a start-up error naming it."""
    networks = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(
                f"CHATTR_TRUSTED_PROXIES: {entry!r} is not an address or network"
            ) from exc
    return networks


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: the peer, unless it is a trusted proxy; then, walking
    X-Forwarded-For from the right, the first address that is not a trusted proxy.

    Entries left of an untrusted hop are the client's own claims and are never believed.
    """
    address = peer
    if not trusted or not forwarded_for:
        return address
    chain = [part.strip() for part in forwarded_for.split(",") if part.strip()]
    while chain and _trusted(address, trusted):
        candidate = chain.pop()
        try:
            ipaddress.ip_address(candidate)
        except ValueError:
            break  # a garbled hop: stop at the last address we could check
        address = candidate
    return address


def request_keys(request: Any, session_id: str, trusted: Sequence[Network]) -> list[str]:
    """The keys a request is counted under: its client's address and its session."""
    peer = ""
    headers: Mapping[str, str] = {}
    if request is not None:
        client = getattr(request, "client", None)
        peer = str(getattr(client, "host", "") or "")
        headers = getattr(request, "headers", None) or {}
    forwarded = headers.get("x-forwarded-for") if headers else None
    keys = [f"addr:{client_address(peer, forwarded, trusted) or 'unknown'}"]
    if session_id:
        keys.append(f"session:{session_id}")
    return keys


class Gate:
    """The fair-use checks a turn or an import passes before any work is done."""

    def __init__(
        self,
        *,
        turns: RateLimiter | None,
        imports: RateLimiter | None,
        fair_share: FairShare,
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        self.turns = turns
        self.imports = imports
        self.fair_share = fair_share
        self.trusted_proxies = list(trusted_proxies)

    @classmethod
    def from_settings(cls, settings: Settings) -> Gate:
        prefix = settings.redis_prefix
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
            # No proxies of its own: chattr's ForwardedHeaders middleware has already put the
            # client that a trusted proxy names (CHATTR_TRUSTED_PROXIES) in the peer's place.
            trusted_proxies=(),
        )

    def keys(self, request: Any, session_id: str) -> list[str]:
        return request_keys(request, session_id, self.trusted_proxies)

    @asynccontextmanager
    async def turn(self, request: Any, session_id: str) -> AsyncIterator[None]:
        """Admit one turn (a rate-limit hit, then a turn slot) for its whole duration, or raise
        Refused saying when to retry."""
        keys = self.keys(request, session_id)
        if self.turns is not None:
            wait = await asyncio.to_thread(self.turns.hit, keys)
            if wait is not None:
                raise Refused(
                    f"Too many messages: at most {self.turns.limit} a minute "
                    f"(CHATTR_TURNS_PER_MINUTE); {try_again_in(wait)}.",
                    wait,
                )
        async with self.fair_share.hold(keys):
            yield

    def check_import(self, request: Any, session_id: str) -> None:
        """Count one import, or raise Refused saying when to retry."""
        if self.imports is None:
            return
        wait = self.imports.hit(self.keys(request, session_id))
        if wait is not None:
            raise Refused(
                f"Too many imports: at most {self.imports.limit} an hour "
                f"(CHATTR_IMPORTS_PER_HOUR); {try_again_in(wait)}.",
                wait,
            )
