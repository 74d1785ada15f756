"""Fair use: per-client rate limits (Redis or in-process) and fairly shared turn slots.

A client is several keys at once (its address, its session): a request passes only when every
key is under its limit, so neither a new session id per request nor one session spread over
many addresses gets around a limit.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

import redis

from chattr.refusal import Refusal

log = logging.getLogger(__name__)


class LimitReached(Refusal):
    """A request over a limit; the message says when to try again."""


class RateLimiter(Protocol):
    """At most `limit` hits per `window_s` seconds for each key (a sliding window). A hit may
    weigh more than one (an upload weighs its size)."""

    limit: int
    window_s: float

    def hit(self, keys: Sequence[str], weight: int = 1) -> float | None:
        """Count a hit of `weight` on every key and return None, or, when it would take any key
        over the limit, count nothing and return the seconds until it has room again."""
        ...


class InProcessRateLimiter:
    """A sliding-window log per key in this process's memory. Thread-safe."""

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._hits: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def hit(self, keys: Sequence[str], weight: int = 1) -> float | None:
        now = self._clock()
        weight = max(1, min(weight, self.limit))  # one hit never outweighs the whole window
        with self._lock:
            wait = 0.0
            for key in keys:
                hits = self._hits.setdefault(key, deque())
                while hits and hits[0][0] <= now - self.window_s:
                    hits.popleft()
                if sum(w for _, w in hits) + weight > self.limit:
                    wait = max(wait, hits[0][0] + self.window_s - now)
            if wait > 0:
                return wait
            for key in keys:
                self._hits[key].append((now, weight))
            # Forget idle clients, or the table grows with every address ever seen.
            if len(self._hits) > 10_000:
                self._hits = {
                    k: v for k, v in self._hits.items() if v and v[-1][0] > now - self.window_s
                }
            return None


# Every key checked first, then all counted: a refused request costs no key a hit. Redis's own
# clock, so replicas sharing the Redis agree (ARGV[5], when given, is a test's own clock). A hit's
# member is `id:weight`. Numbers go back as strings: Lua would truncate.
_SLIDING_WINDOW = """
local now = tonumber(ARGV[5])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local window, limit, weight = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local wait = 0
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local used = 0
  for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    used = used + tonumber(string.match(member, ':(%d+)$') or '1')
  end
  if used + weight > limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now)
  end
end
if wait > 0 then return tostring(wait) end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[3] .. ':' .. ARGV[4])
  redis.call('PEXPIRE', key, math.ceil(window * 1000))
end
return ''
"""


class RedisRateLimiter:
    """The same sliding window in Redis (a sorted set per key), shared by every replica.

    Redis unreachable: the request passes (logged); fair use must not take the chat down.
    """

    def __init__(
        self,
        url: str,
        limit: int,
        window_s: float,
        *,
        prefix: str,
        name: str,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """`clock`: seconds, in place of Redis's own clock (for tests; replicas need Redis's)."""
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._redis = redis.Redis.from_url(
            url, socket_connect_timeout=1.0, socket_timeout=2.0, decode_responses=True
        )
        self._script = self._redis.register_script(_SLIDING_WINDOW)
        self._prefix = f"{prefix}:rate:{name}"

    def hit(self, keys: Sequence[str], weight: int = 1) -> float | None:
        weight = max(1, min(weight, self.limit))
        try:
            result = self._script(
                keys=[f"{self._prefix}:{k}" for k in keys],
                args=[
                    self.window_s,
                    self.limit,
                    uuid.uuid4().hex,
                    weight,
                    "" if self._clock is None else repr(self._clock()),
                ],
            )
        except redis.RedisError as exc:
            log.warning("rate limit not applied, Redis unreachable: %s", exc)
            return None
        return float(result) if result else None

    def close(self) -> None:
        self._redis.close()


def open_rate_limiter(
    redis_url: str | None, limit: int, window_s: float, *, prefix: str, name: str
) -> RateLimiter | None:
    """Redis when a URL is given, else in-process; None when `limit` is 0 (no limit)."""
    if limit <= 0:
        return None
    if redis_url:
        return RedisRateLimiter(redis_url, limit, window_s, prefix=prefix, name=name)
    return InProcessRateLimiter(limit, window_s)


def try_again_in(seconds: float) -> str:
    return f"try again in {max(1, math.ceil(seconds))} s"


class FairShare:
    """The turn slots, shared fairly: `slots` turns run at once; each client may hold or wait
    for at most `per_client` of them, and the excess is refused at once. Waiting turns start in
    arrival order, so a flood from one client is a few turns in line, not the whole line.

    Turns take their slot here instead of in Gradio's first-come queue, where a burst from one
    client would sit ahead of everyone else. In-process on purpose: slots are per process.
    """

    def __init__(self, slots: int, per_client: int, max_waiting: int) -> None:
        self.slots = max(1, slots)
        self.per_client = per_client
        self.max_waiting = max_waiting
        self._held: dict[str, int] = {}  # running or waiting, per key
        self._running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def hold(self, keys: Sequence[str]) -> AsyncIterator[None]:
        """Hold one turn slot for the duration, or raise LimitReached."""
        if self.per_client > 0 and any(self._held.get(k, 0) >= self.per_client for k in keys):
            raise LimitReached(
                f"You already have {self.per_client} replies in progress or waiting; wait for "
                "one to finish (CHATTR_TURNS_PER_CLIENT)."
            )
        if self._running >= self.slots and len(self._waiters) >= self.max_waiting:
            raise LimitReached("chattr is busy: every turn slot is taken; try again in 10 s.", 10.0)
        for key in keys:
            self._held[key] = self._held.get(key, 0) + 1
        try:
            if self._running >= self.slots or self._waiters:
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                try:
                    await waiter  # resolved by a finishing turn, with its slot handed over
                except BaseException:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
                    elif not waiter.cancelled():
                        self._release()  # the slot was handed to us as we were cancelled
                    raise
            else:
                self._running += 1
            try:
                yield
            finally:
                self._release()
        finally:
            for key in keys:
                left = self._held.get(key, 0) - 1
                if left > 0:
                    self._held[key] = left
                else:
                    self._held.pop(key, None)

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; the count of running stays
                return
        self._running -= 1

    def held(self, key: str) -> int:
        return self._held.get(key, 0)

    @property
    def running(self) -> int:
        return self._running
