"""What the page keeps in the browser: its conversation id and the character chosen, so a page
reloaded (onto this replica or another) shows the conversation and continues it.

Gradio's `BrowserState` keeps a value in the browser's localStorage, encrypted with a secret that
the page's config carries. Each replica would make its own secret and could not read what another
stored, so every replica must use the same one: CHATTR_BROWSER_SECRET, else one made once and
kept in Redis. The secret reaches every browser with the page, so it hides nothing from the
person: it only has to agree between replicas.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

import redis

from chattr.settings import Settings

log = logging.getLogger(__name__)

SESSION_KEY = "chattr-conversation"
CHARACTER_KEY = "chattr-character"
# What the page itself makes (uuid4 hex); a stored value that is not one is never used.
PAGE_SESSION_ID = re.compile(r"[0-9a-f]{32}")


def browser_secret(settings: Settings) -> str:
    """CHATTR_BROWSER_SECRET, else the one the replicas sharing CHATTR_REDIS_URL agreed on (the
    first to start made it), else a new one (this process's only)."""
    if settings.browser_secret is not None and settings.browser_secret.get_secret_value():
        return settings.browser_secret.get_secret_value()
    if settings.redis_url:
        client = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=2.0, socket_timeout=2.0
        )
        key = f"{settings.redis_prefix}:browser-secret"
        try:
            client.set(key, secrets.token_urlsafe(24), nx=True)  # the first replica's wins
            shared = client.get(key)
            if isinstance(shared, bytes):
                return shared.decode()
        except redis.RedisError as exc:
            log.warning(
                "browser secret not shared (Redis unreachable: %s): a page reloaded onto "
                "another replica starts a new conversation; set CHATTR_BROWSER_SECRET",
                exc,
            )
        finally:
            client.close()
    return secrets.token_urlsafe(24)


def stored_session(value: Any) -> str | None:
    """The conversation id a browser kept, if it is one the page made."""
    return value if isinstance(value, str) and PAGE_SESSION_ID.fullmatch(value) else None
