"""What the page keeps in the browser: its conversation id and the character chosen, and the scene
it shows (its own id, its members), so a page reloaded (onto this replica or another) shows the
conversation and continues it.

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
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import redis

from chattr.scene.speakers import Strategy
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


SCENE_STORAGE_KEY = "chattr-scene"
STRATEGIES = tuple(s.value for s in Strategy)


@dataclass(frozen=True)
class PageScene:
    """The scene the page shows, as the browser keeps it: its own conversation id (never a
    one-to-one chat's), its members in the scene's order and who answers. Fewer than two members:
    the page is not in a scene (the id stays, so "Forget me" still reaches it)."""

    session_id: str
    members: tuple[str, ...] = ()
    strategy: str = "natural"

    @property
    def active(self) -> bool:
        return len(self.members) >= 2

    def stored(self) -> dict[str, Any]:
        """What the browser keeps (gr.BrowserState)."""
        return {
            "session_id": self.session_id,
            "members": list(self.members),
            "strategy": self.strategy,
        }


def stored_scene(value: Any, known: Collection[str]) -> PageScene | None:
    """The scene a browser kept, if the page made it: its id one the page makes, its members
    characters that are still `known` (a character gone since is left out), each once."""
    if not isinstance(value, dict):
        return None
    session_id = stored_session(value.get("session_id"))
    if session_id is None:
        return None
    members = value.get("members")
    kept: list[str] = []
    if isinstance(members, list):
        kept = [m for m in members if isinstance(m, str) and m in known]
    strategy = value.get("strategy")
    return PageScene(
        session_id,
        tuple(dict.fromkeys(kept)),
        strategy if strategy in STRATEGIES else "natural",
    )
