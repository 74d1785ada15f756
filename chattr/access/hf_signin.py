"""Hugging Face sign-in on a Space (CHATTR_HF_SIGNIN): who is signed in.

People sign in with the page's "Sign in with Hugging Face" button: Gradio's login routes
(`/login/huggingface`, `/login/callback`) run the OAuth flow and keep the profile in the signed
session cookie. Scripts have no cookie; they send a Hugging Face token
(`Client(url, token=...)`, which gradio_client puts in `X-HF-Authorization`), and chattr asks the
Hub whose it is (`/api/whoami-v2`), remembering the answer for a few minutes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

import httpx

from chattr.refusal import Refusal

if TYPE_CHECKING:
    from chattr.access.sign_in_throttle import SignInThrottle

log = logging.getLogger(__name__)

SIGN_IN_FIRST = "Sign in with Hugging Face first (the button at the top of the page)."
# Where Gradio's login callback keeps the OAuth answer in the session.
SESSION_KEY = "oauth_info"
TOKEN_HEADERS = ("x-hf-authorization", "authorization")
# What a Space with `hf_oauth: true` sets, and Gradio's login routes read.
OAUTH_VARIABLES = ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "OPENID_PROVIDER_URL")


class SignInRequired(Refusal):
    """A request from someone not signed in, where sign-in is required."""

    def __init__(self, message: str = SIGN_IN_FIRST) -> None:
        super().__init__(message)


def check_oauth_configured(environ: MutableMapping[str, str] | None = None) -> None:
    """Fail at start-up, saying what to set, when the Space has no OAuth app."""
    env = os.environ if environ is None else environ
    # Gradio takes a process for a Space by SYSTEM=spaces and SPACE_ID (elsewhere its login
    # routes are mocked from the local Hugging Face login instead).
    missing = [name for name in ("SPACE_ID", *OAUTH_VARIABLES) if not env.get(name)]
    if env.get("SYSTEM") != "spaces":
        missing.insert(0, "SYSTEM=spaces")
    if missing:
        raise ValueError(
            "CHATTR_HF_SIGNIN needs a Hugging Face Space with `hf_oauth: true` in its README's "
            "front matter (the Space then sets OAUTH_CLIENT_ID and the rest); missing here: "
            + ", ".join(missing)
        )


def session_user(session: MutableMapping[str, Any] | None) -> str | None:
    """The Hugging Face user name a page session signed in as, if its sign-in is still valid."""
    if not session:
        return None
    info = session.get(SESSION_KEY)
    if not isinstance(info, dict):
        return None
    expires_at = info.get("expires_at")
    if isinstance(expires_at, int | float) and expires_at < time.time():
        return None
    userinfo = info.get("userinfo")
    name = userinfo.get("preferred_username") if isinstance(userinfo, dict) else None
    return name if isinstance(name, str) and name else None


def bearer_token(headers: Any) -> str | None:
    """The Hugging Face token a script sent, if any."""
    for header in TOKEN_HEADERS:
        value = headers.get(header) if headers is not None else None
        if isinstance(value, str) and value[:7].lower() == "bearer ":
            token = value[7:].strip()
            if token:
                return token
    return None


class HfSignIn:
    """Tells who is signed in with Hugging Face: by page session, else by token."""

    def __init__(
        self,
        hub_url: str,
        *,
        ttl_s: float = 300.0,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        throttle: SignInThrottle | None = None,
    ) -> None:
        """`throttle`: counts tokens nobody owns per client address, and refuses an address
        with too many before the Hub is asked again (chattr.access.sign_in_throttle)."""
        self.throttle = throttle
        self.whoami_url = hub_url.rstrip("/") + "/api/whoami-v2"
        self.ttl_s = ttl_s
        self._client = httpx.Client(timeout=timeout_s, transport=transport)
        self._known: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def user(self, request: Any) -> str | None:
        """The signed-in user's name for a Gradio or Starlette request, or None."""
        if request is None:
            return None
        name = session_user(_session_of(request))
        if name is not None:
            return name
        token = bearer_token(getattr(request, "headers", None))
        if not token:
            return None
        if self.throttle is None:
            return self.token_user(token)
        address = _address_of(request)
        wait = self.throttle.wait(address)
        if wait > 0:
            raise self.throttle.refusal(wait)  # before the Hub is asked about one more guess
        name = self.token_user(token)
        if name is None and self._known_nobodys(token):
            self.throttle.failed(address)
        return name

    def _known_nobodys(self, token: str) -> bool:
        """The Hub said this token is nobody's (not merely unreachable)."""
        with self._lock:
            known = self._known.get(_cache_key(token))
        return known is not None and known[1] is None

    def token_user(self, token: str) -> str | None:
        """Whose token this is, as the Hub says (remembered for `ttl_s`); None if nobody's."""
        now = time.monotonic()
        key = _cache_key(token)
        with self._lock:
            known = self._known.get(key)
            if known is not None and known[0] > now:
                return known[1]
        try:
            answer = self._client.get(self.whoami_url, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            log.warning("could not ask the Hub whose a token is: %s", exc)
            return None  # not remembered: the next request asks again
        name = None
        if answer.status_code == 200:
            try:
                body = answer.json()
            except json.JSONDecodeError:
                body = None
            candidate = body.get("name") if isinstance(body, dict) else None
            if isinstance(candidate, str) and candidate and body.get("type", "user") == "user":
                name = candidate
        elif answer.status_code not in (401, 403):
            log.warning("the Hub answered %s to whoami", answer.status_code)
            return None
        with self._lock:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[key] = (now + self.ttl_s, name)
        return name

    def require(self, request: Any) -> str:
        """The signed-in user's name, or SignInRequired."""
        name = self.user(request)
        if name is None:
            raise SignInRequired()
        return name


def _cache_key(token: str) -> str:
    # Tokens are not kept in memory as they are, only their hashes.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _address_of(request: Any) -> str | None:
    inner = getattr(request, "request", None) or request
    client = getattr(inner, "client", None) or getattr(request, "client", None)
    host = getattr(client, "host", None)
    return host if isinstance(host, str) else None


def _session_of(request: Any) -> MutableMapping[str, Any] | None:
    """The request's session (Gradio's login middleware decodes it), if it has one."""
    inner = getattr(request, "request", None) or request
    scope = getattr(inner, "scope", None)
    if isinstance(scope, dict):
        session = scope.get("session")
        return session if isinstance(session, dict) else None
    try:
        session = request.session  # a gr.Request rebuilt for a queued event
    except (AssertionError, AttributeError, KeyError):
        return None
    return session if isinstance(session, dict) else None
