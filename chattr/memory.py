"""Short-term memory: the last N turns of each (session, character) conversation.

Redis when ``CHATTR_REDIS_URL`` is set, else an in-process store (the embedded default).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Protocol

import redis

log = logging.getLogger(__name__)


# Where a character id goes in the memory key, for a session's scene (chattr.scene): ids are
# lowercase words, so no character's chat can share it. Its turns name their `speaker`.
SCENE_KEY = "@scene"


@dataclass(frozen=True)
class Turn:
    """One exchange: what the person said and what the character answered."""

    user: str
    assistant: str
    at: float = field(default_factory=time.time)
    # The person spoke over the reply: `assistant` holds only the part they heard.
    interrupted: bool = False
    # The joined reply's audio and video URLs, for export.
    media: tuple[str, ...] = ()
    # In a scene, the member who said `assistant` (a character id); empty in a one-character chat.
    speaker: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "media", tuple(self.media))  # a list when read back from JSON


class MemoryUnavailable(RuntimeError):
    """The memory backend cannot be reached; the turn goes on without it."""


class ShortTermMemory(Protocol):
    """Recent turns per session and character."""

    def recent(self, session_id: str, character_id: str) -> list[Turn]: ...

    def append(self, session_id: str, character_id: str, turn: Turn) -> None: ...

    def pop_last(self, session_id: str, character_id: str) -> Turn | None: ...

    def clear(self, session_id: str, character_id: str) -> None: ...


class InProcessMemory:
    """Memory in this process's RAM; lost on restart. Thread-safe."""

    def __init__(self, max_turns: int) -> None:
        self._max_turns = max_turns
        self._turns: dict[tuple[str, str], deque[Turn]] = {}
        self._lock = threading.Lock()

    def recent(self, session_id: str, character_id: str) -> list[Turn]:
        with self._lock:
            return list(self._turns.get((session_id, character_id), ()))

    def append(self, session_id: str, character_id: str, turn: Turn) -> None:
        with self._lock:
            key = (session_id, character_id)
            self._turns.setdefault(key, deque(maxlen=self._max_turns)).append(turn)

    def pop_last(self, session_id: str, character_id: str) -> Turn | None:
        with self._lock:
            turns = self._turns.get((session_id, character_id))
            return turns.pop() if turns else None

    def clear(self, session_id: str, character_id: str) -> None:
        with self._lock:
            self._turns.pop((session_id, character_id), None)


class RedisMemory:
    """Memory in Redis: one list per conversation, trimmed to N turns, expiring after a TTL."""

    def __init__(self, url: str, *, max_turns: int, ttl_s: int, prefix: str = "chattr") -> None:
        # Short timeouts: a Redis that went away must cost a turn milliseconds, not a minute.
        self._redis = redis.Redis.from_url(
            url, socket_connect_timeout=1.0, socket_timeout=2.0, decode_responses=True
        )
        self._max_turns = max_turns
        self._ttl_s = ttl_s
        self._prefix = prefix

    def _key(self, session_id: str, character_id: str) -> str:
        return f"{self._prefix}:memory:{session_id}:{character_id}"

    def recent(self, session_id: str, character_id: str) -> list[Turn]:
        try:
            raw = self._redis.lrange(self._key(session_id, character_id), 0, -1)
        except redis.RedisError as exc:
            raise MemoryUnavailable(f"Redis unreachable: {exc}") from exc
        return [Turn(**json.loads(item)) for item in raw]

    def append(self, session_id: str, character_id: str, turn: Turn) -> None:
        key = self._key(session_id, character_id)
        try:
            with self._redis.pipeline() as pipe:
                pipe.rpush(key, json.dumps(asdict(turn)))
                pipe.ltrim(key, -self._max_turns, -1)
                pipe.expire(key, self._ttl_s)
                pipe.execute()
        except redis.RedisError as exc:
            raise MemoryUnavailable(f"Redis unreachable: {exc}") from exc

    def pop_last(self, session_id: str, character_id: str) -> Turn | None:
        try:
            raw = self._redis.rpop(self._key(session_id, character_id))
        except redis.RedisError as exc:
            raise MemoryUnavailable(f"Redis unreachable: {exc}") from exc
        return Turn(**json.loads(raw)) if isinstance(raw, str) else None

    def clear(self, session_id: str, character_id: str) -> None:
        try:
            self._redis.delete(self._key(session_id, character_id))
        except redis.RedisError as exc:
            raise MemoryUnavailable(f"Redis unreachable: {exc}") from exc

    def close(self) -> None:
        self._redis.close()


def open_memory(
    redis_url: str | None, *, max_turns: int, ttl_s: int, prefix: str = "chattr"
) -> ShortTermMemory:
    """Redis when a URL is given, else the in-process store (with a log line saying so)."""
    if redis_url:
        log.info("short-term memory: Redis at %s", redis_url.split("@")[-1])
        return RedisMemory(redis_url, max_turns=max_turns, ttl_s=ttl_s, prefix=prefix)
    log.info(
        "short-term memory: in-process store (CHATTR_REDIS_URL is unset; memory is lost on restart)"
    )
    return InProcessMemory(max_turns)
