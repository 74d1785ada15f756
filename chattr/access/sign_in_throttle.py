"""Password guessing slowed down: failed sign-ins counted per client address and per user name.

After `failures` failed sign-ins from one address within the window, that address waits before
its next try is even checked (429 with Retry-After); every further failure after a wait doubles
the next wait, up to an hour. A user name is counted the same way across all addresses, with a
higher threshold (a guessing attack spread over many addresses), but that lock holds only for
clients without a device token for the name: a browser or script that signed in as that person
before carries one (a cookie, OWASP's "device cookie"), so an attacker's failures never lock the
person out of a device they already use, and one attacking address is stopped by its own lock
long before it could lock the name.

Kept in Redis when there is one (replicas share the counts; Redis's clock), in-process otherwise.
The same throttle guards the Hugging Face token check (`chattr.access.hf_signin`), by address.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qs

import anyio
import redis
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chattr.access.rate_limits import LimitReached, try_again_in

log = logging.getLogger(__name__)

MAX_LOCK_S = 3600.0  # the longest wait, however many failures
LOCK_MEMORY_S = 86_400.0  # how long a lock's level is remembered after it ends
DEVICE_TTL_S = 30 * 86_400  # how long a device token vouches for its user
DEVICE_COOKIE = "chattr-device"
MAX_LOGIN_BODY = 16 * 1024  # a sign-in form is a name and a password


def address_key(address: str | None) -> str:
    return f"addr:{address or 'unknown'}"


def user_key(user: str) -> str:
    # Hashed: a name comes from a form, any length; the key stays small and holds no name.
    return "user:" + hashlib.sha256(user.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class ThrottleStore(Protocol):
    """Failure counts, locks and device tokens (Redis or in-process)."""

    def locked_for(self, keys: Sequence[str]) -> float:
        """Seconds until every key is unlocked (0: none is locked)."""
        ...

    def fail(
        self, keys: Sequence[str], limits: Sequence[int], window_s: float, lock_s: float
    ) -> float:
        """Count a failure on each key (key i locks at `limits[i]` failures); the longest lock
        this failure started (0: none)."""
        ...

    def remember_device(self, token: str, user: str) -> None: ...

    def device_user(self, token: str) -> str | None: ...


def _lock_length(level: int, lock_s: float) -> float:
    return float(min(MAX_LOCK_S, lock_s * 2 ** (level - 1)))


class InProcessThrottleStore:
    """The counts in this process's memory. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._failures: dict[str, list[float]] = {}
        self._locks: dict[str, tuple[float, int]] = {}  # key -> (locked until, level)
        self._devices: dict[str, tuple[str, float]] = {}  # token hash -> (user, until)
        self._lock = threading.Lock()

    def locked_for(self, keys: Sequence[str]) -> float:
        now = self._clock()
        with self._lock:
            return max([0.0] + [self._locks.get(k, (0.0, 0))[0] - now for k in keys])

    def fail(
        self, keys: Sequence[str], limits: Sequence[int], window_s: float, lock_s: float
    ) -> float:
        now = self._clock()
        started = 0.0
        with self._lock:
            self._forget_idle(now, window_s)
            for key, limit in zip(keys, limits, strict=True):
                failures = [t for t in self._failures.get(key, []) if t > now - window_s]
                failures.append(now)
                until, level = self._locks.get(key, (0.0, 0))
                if until + LOCK_MEMORY_S < now:
                    level = 0
                # Once a key has waited, every further failure makes it wait again, longer.
                if len(failures) >= limit or level > 0:
                    level += 1
                    length = _lock_length(level, lock_s)
                    self._locks[key] = (now + length, level)
                    self._failures.pop(key, None)
                    started = max(started, length)
                else:
                    self._failures[key] = failures
        return started

    def _forget_idle(self, now: float, window_s: float) -> None:
        # Bounded tables: a flood from many addresses must not grow them without end.
        if len(self._failures) > 10_000:
            self._failures = {k: v for k, v in self._failures.items() if v[-1] > now - window_s}
        if len(self._locks) > 10_000:
            self._locks = {k: v for k, v in self._locks.items() if v[0] + LOCK_MEMORY_S > now}

    def remember_device(self, token: str, user: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._devices) > 10_000:
                self._devices = {k: v for k, v in self._devices.items() if v[1] > now}
            self._devices[_token_hash(token)] = (user, now + DEVICE_TTL_S)

    def device_user(self, token: str) -> str | None:
        with self._lock:
            found = self._devices.get(_token_hash(token))
        return found[0] if found is not None and found[1] > self._clock() else None


# Every key counted in one step; Redis's clock unless ARGV[4] gives a test's own. KEYS come in
# pairs (failures sorted set, lock hash); ARGV[6 + i] is pair i's limit. Numbers go back as strings.
_FAIL = """
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local window, lock_s, max_lock = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local member, memory = ARGV[5], tonumber(ARGV[6])
local started = 0
for i = 1, #KEYS, 2 do
  local failures, lock = KEYS[i], KEYS[i + 1]
  local limit = tonumber(ARGV[6 + (i + 1) / 2])
  redis.call('ZREMRANGEBYSCORE', failures, '-inf', now - window)
  redis.call('ZADD', failures, now, member)
  redis.call('PEXPIRE', failures, math.ceil(window * 1000))
  local level = tonumber(redis.call('HGET', lock, 'level') or '0')
  if tonumber(redis.call('HGET', lock, 'until') or '0') + memory < now then
    level = 0  -- as the key's expiry does, for a clock that is not Redis's
  end
  if redis.call('ZCARD', failures) >= limit or level > 0 then
    level = level + 1
    local length = math.min(max_lock, lock_s * 2 ^ (level - 1))
    redis.call('HSET', lock, 'until', tostring(now + length), 'level', level)
    redis.call('PEXPIRE', lock, math.ceil((length + memory) * 1000))
    redis.call('DEL', failures)
    started = math.max(started, length)
  end
end
return tostring(started)
"""

_LOCKED_FOR = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local wait = 0
for _, lock in ipairs(KEYS) do
  local until_ = tonumber(redis.call('HGET', lock, 'until') or '0')
  wait = math.max(wait, until_ - now)
end
return tostring(wait)
"""


class RedisThrottleStore:
    """The counts in Redis, shared by every replica. Redis unreachable: nothing is locked and
    nothing counted (logged); the sign-in still checks the password."""

    def __init__(self, url: str, *, prefix: str, clock: Callable[[], float] | None = None) -> None:
        self._redis = redis.Redis.from_url(
            url, socket_connect_timeout=1.0, socket_timeout=2.0, decode_responses=True
        )
        self._fail = self._redis.register_script(_FAIL)
        self._locked_for = self._redis.register_script(_LOCKED_FOR)
        self._prefix = f"{prefix}:signin"
        self._clock = clock

    def _now(self) -> str:
        return "" if self._clock is None else repr(self._clock())

    def locked_for(self, keys: Sequence[str]) -> float:
        try:
            wait = self._locked_for(
                keys=[f"{self._prefix}:lock:{k}" for k in keys], args=[self._now()]
            )
        except redis.RedisError as exc:
            log.warning("sign-in throttle not applied, Redis unreachable: %s", exc)
            return 0.0
        return max(0.0, float(wait))

    def fail(
        self, keys: Sequence[str], limits: Sequence[int], window_s: float, lock_s: float
    ) -> float:
        redis_keys = []
        for key in keys:
            redis_keys += [f"{self._prefix}:failures:{key}", f"{self._prefix}:lock:{key}"]
        try:
            started = self._fail(
                keys=redis_keys,
                args=[
                    window_s,
                    lock_s,
                    MAX_LOCK_S,
                    self._now(),
                    secrets.token_hex(8),
                    LOCK_MEMORY_S,
                    *limits,
                ],
            )
        except redis.RedisError as exc:
            log.warning("failed sign-in not counted, Redis unreachable: %s", exc)
            return 0.0
        return float(started)

    def remember_device(self, token: str, user: str) -> None:
        try:
            self._redis.set(f"{self._prefix}:device:{_token_hash(token)}", user, ex=DEVICE_TTL_S)
        except redis.RedisError as exc:
            log.warning("device token not kept, Redis unreachable: %s", exc)

    def device_user(self, token: str) -> str | None:
        try:
            user = self._redis.get(f"{self._prefix}:device:{_token_hash(token)}")
        except redis.RedisError:
            return None
        return user if isinstance(user, str) else None

    def close(self) -> None:
        self._redis.close()


def _token_hash(token: str) -> str:
    # Only hashes are kept: a copy of the store does not hand out device tokens.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class SignInThrottle:
    """Whether a sign-in may be checked now, and what a failure or a success leaves behind."""

    def __init__(
        self,
        store: ThrottleStore,
        *,
        failures: int,
        user_failures: int,
        window_s: float,
        lock_s: float,
    ) -> None:
        self.store = store
        self.failures = failures
        self.user_failures = user_failures
        self.window_s = window_s
        self.lock_s = lock_s

    @classmethod
    def open(
        cls,
        redis_url: str | None,
        *,
        prefix: str,
        failures: int,
        user_failures: int,
        window_s: float,
        lock_s: float,
        clock: Callable[[], float] | None = None,
    ) -> SignInThrottle:
        store: ThrottleStore
        if redis_url:
            store = RedisThrottleStore(redis_url, prefix=prefix, clock=clock)
        else:
            store = InProcessThrottleStore(clock or time.time)
        return cls(
            store,
            failures=failures,
            user_failures=user_failures,
            window_s=window_s,
            lock_s=lock_s,
        )

    def _keys(self, address: str | None, user: str | None) -> tuple[list[str], list[int]]:
        keys, limits = [address_key(address)], [self.failures]
        if user is not None:
            keys.append(user_key(user))
            limits.append(self.user_failures)
        return keys, limits

    def wait(
        self, address: str | None, user: str | None = None, device: str | None = None
    ) -> float:
        """Seconds this client must wait before its sign-in is checked (0: check it now). The
        name's own lock is skipped for a device that signed in as that name before."""
        trusted = user is not None and device is not None and self.trusts(device, user)
        keys, _ = self._keys(address, None if trusted else user)
        return self.store.locked_for(keys)

    def failed(self, address: str | None, user: str | None = None) -> float:
        """Count a failed sign-in; the wait it started (0: none yet)."""
        keys, limits = self._keys(address, user)
        return self.store.fail(keys, limits, self.window_s, self.lock_s)

    def signed_in(self, user: str) -> str:
        """A fresh device token vouching for `user` on the device that just signed in."""
        token = secrets.token_urlsafe(32)
        self.store.remember_device(token, user)
        return token

    def trusts(self, device: str, user: str) -> bool:
        known = self.store.device_user(device)
        return known is not None and hmac.compare_digest(known.encode(), user.encode())

    def refusal(self, wait_s: float) -> LimitReached:
        return LimitReached(f"Too many failed sign-ins; {try_again_in(wait_s)}.", wait_s)


class PasswordCheck:
    """CHATTR_AUTH's pairs as Gradio's `auth` callable: every pair compared, name and password,
    in constant time, so neither a wrong name nor a wrong password answers sooner."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._pairs = [(_digest(user), _digest(password)) for user, password in pairs]

    def __call__(self, user: str, password: str) -> bool:
        given_user, given_password = _digest(user), _digest(password)
        matched = False
        for known_user, known_password in self._pairs:
            same = hmac.compare_digest(given_user, known_user) & hmac.compare_digest(
                given_password, known_password
            )
            matched |= same  # no early exit: every pair costs the same
        return matched


def _digest(text: str) -> bytes:
    # Equal lengths for compare_digest, whatever was typed.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class SignInGuard:
    """ASGI middleware in front of Gradio's `POST /login`: a locked client is answered 429 with
    Retry-After before its password is looked at; a failure is counted, a success gets a device
    token (cookie). Its store calls run on a few threads of their own, so a flood of sign-ins
    waits among itself and never takes the threads turns use.
    """

    def __init__(self, app: ASGIApp, *, throttle: SignInThrottle, threads: int = 4) -> None:
        self.app = app
        self.throttle = throttle
        self._threads = anyio.CapacityLimiter(threads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or str(scope.get("path", "")).rstrip("/") != "/login"
        ):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive, MAX_LOGIN_BODY)
        if body is None:
            await _answer(send, 413, "The sign-in form is too large.")
            return
        user = await _form_user(scope, body)
        address = (scope.get("client") or (None,))[0]
        device = _cookie(scope, DEVICE_COOKIE)
        wait = await self._run(self.throttle.wait, address, user, device)
        if wait > 0:
            await _answer(send, 429, str(self.throttle.refusal(wait)), retry_after_s=wait)
            return

        outcome: dict[str, int] = {}

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
                if message["status"] == 200 and user is not None:
                    token = await self._run(self.throttle.signed_in, user)
                    secure = "; Secure" if scope.get("scheme") == "https" else ""
                    cookie = (
                        f"{DEVICE_COOKIE}={token}; Max-Age={DEVICE_TTL_S}; Path=/; HttpOnly; "
                        f"SameSite=Lax{secure}"
                    )
                    message["headers"] = [*message["headers"], (b"set-cookie", cookie.encode())]
            await send(message)

        await self.app(scope, _replay(body), observe)
        if outcome.get("status") in (400, 401):
            await self._run(self.throttle.failed, address, user)

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(function, *args, limiter=self._threads)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _form_user(scope: Scope, body: bytes) -> str | None:
    """The user name of a sign-in form (urlencoded from scripts, multipart from the page)."""
    content_type = dict(scope.get("headers") or []).get(b"content-type", b"").decode("latin-1")
    if content_type.startswith("application/x-www-form-urlencoded"):
        values = parse_qs(body.decode("utf-8", "replace")).get("username")
        name = values[0] if values else None
    else:
        try:
            form: FormData = await Request(scope, _replay(body)).form()
        except Exception:  # malformed: Gradio refuses it; it is counted as a failure
            return None
        value = form.get("username")
        name = value if isinstance(value, str) else None
    # As Gradio reads it (it strips the name before looking it up).
    return name.strip() if name is not None else None


def _cookie(scope: Scope, name: str) -> str | None:
    for header, value in scope.get("headers") or []:
        if header == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, found = part.strip().partition("=")
                if key == name and found:
                    return str(found)
    return None


async def _answer(
    send: Send, status: int, message: str, retry_after_s: float | None = None
) -> None:
    body = json.dumps({"error": message, "detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after_s is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(retry_after_s))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
