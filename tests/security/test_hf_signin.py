"""Who is signed in with Hugging Face: page sessions, script tokens, the gate that requires it."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from chattr.access.gate import Gate, request_keys
from chattr.access.hf_signin import HfSignIn, SignInRequired, check_oauth_configured, session_user
from chattr.access.rate_limits import FairShare


def signed_in(name: str, expires_in: float = 3600) -> dict[str, Any]:
    return {
        "oauth_info": {
            "expires_at": int(time.time() + expires_in),
            "userinfo": {"preferred_username": name},
        }
    }


def request(session: dict[str, Any] | None = None, /, **headers: str) -> SimpleNamespace:
    """What chattr is handed: a request with a scope (its decoded session) and headers."""
    scope = {"type": "http", "session": session} if session is not None else {"type": "http"}
    return SimpleNamespace(scope=scope, headers=headers, client=SimpleNamespace(host="203.0.113.5"))


class Hub:
    """The Hub's whoami, answering from `accounts`, counting calls; `status` forces an answer."""

    def __init__(self) -> None:
        self.accounts = {"hf_ada": {"type": "user", "name": "ada"}, "hf_org": {"type": "org"}}
        self.calls = 0
        self.status: int | None = None

    def __call__(self, req: httpx.Request) -> httpx.Response:
        self.calls += 1
        assert req.url.path == "/api/whoami-v2"
        if self.status is not None:
            return httpx.Response(self.status, text="<html>oops</html>")
        token = req.headers["authorization"].removeprefix("Bearer ")
        if token not in self.accounts:
            return httpx.Response(401, json={"error": "Invalid credentials"})
        return httpx.Response(200, json=self.accounts[token])


@pytest.fixture
def hub() -> Hub:
    return Hub()


@pytest.fixture
def sign_in(hub: Hub) -> HfSignIn:
    return HfSignIn("https://hub.test", transport=httpx.MockTransport(hub))


def test_a_page_session_is_signed_in_until_it_expires() -> None:
    assert session_user(signed_in("ada")) == "ada"
    assert session_user(signed_in("ada", expires_in=-5)) is None
    assert session_user({}) is None
    assert session_user({"oauth_info": "garbage"}) is None
    assert session_user({"oauth_info": {"userinfo": {"preferred_username": ""}}}) is None


def test_a_scripts_token_is_asked_about_once_then_remembered(sign_in: HfSignIn, hub: Hub) -> None:
    # gradio_client sends `token=` as X-HF-Authorization; a plain Authorization works too.
    assert sign_in.user(request(**{"x-hf-authorization": "Bearer hf_ada"})) == "ada"
    assert sign_in.user(request(authorization="Bearer hf_ada")) == "ada"
    assert hub.calls == 1
    # Unknown tokens and organisation tokens sign nobody in; that answer is remembered too.
    assert sign_in.user(request(authorization="Bearer hf_nobody")) is None
    assert sign_in.user(request(authorization="Bearer hf_nobody")) is None
    assert sign_in.user(request(authorization="Bearer hf_org")) is None
    assert hub.calls == 3
    # A page session needs no call at all; neither does a request with nothing.
    assert sign_in.user(request(signed_in("grace"))) == "grace"
    assert sign_in.user(request()) is None and sign_in.user(None) is None
    assert sign_in.user(request(authorization="Basic abc")) is None
    assert hub.calls == 3


def test_a_hub_outage_is_not_remembered(sign_in: HfSignIn, hub: Hub) -> None:
    hub.status = 502
    assert sign_in.user(request(authorization="Bearer hf_ada")) is None
    hub.status = None
    assert sign_in.user(request(authorization="Bearer hf_ada")) == "ada"
    assert hub.calls == 2


async def test_the_gate_refuses_turns_and_imports_of_people_not_signed_in(
    sign_in: HfSignIn,
) -> None:
    gate = Gate(turns=None, imports=None, fair_share=FairShare(4, 2, 8), sign_in=sign_in)
    with pytest.raises(SignInRequired, match="Sign in with Hugging Face first"):
        async with gate.turn(request(), "s1"):
            pass
    with pytest.raises(SignInRequired):
        gate.check_import(request(authorization="Bearer hf_nobody"), "s1")
    async with gate.turn(request(signed_in("ada")), "s1"):
        pass
    # Signed-in people are counted by their name as well as address and session.
    assert gate.keys(request(signed_in("ada")), "s1") == [
        "addr:203.0.113.5",
        "session:s1",
        "user:ada",
    ]
    assert request_keys(None, "") == ["addr:unknown"]


def test_sign_in_outside_a_space_stops_start_up_saying_what_is_missing() -> None:
    missing = r"hf_oauth: true.*SYSTEM=spaces, SPACE_ID, OAUTH_CLIENT_ID"
    with pytest.raises(ValueError, match=missing):
        check_oauth_configured({})
    space = {
        "SYSTEM": "spaces",
        "SPACE_ID": "a/b",
        "OAUTH_CLIENT_ID": "x",
        "OAUTH_CLIENT_SECRET": "y",
        "OAUTH_SCOPES": "openid profile",
    }
    with pytest.raises(ValueError, match=r"missing here: OPENID_PROVIDER_URL$"):
        check_oauth_configured(space)
    check_oauth_configured({**space, "OPENID_PROVIDER_URL": "https://huggingface.co"})
