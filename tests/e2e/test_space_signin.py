"""Hugging Face sign-in on a Space (CHATTR_HF_SIGNIN), with `app.py` run as a Space runs it and
a stand-in Hub: Gradio's real OAuth routes and authlib do the whole flow over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from chattr.testing.fake_llm import FakeLLMServer

from ..security.fake_hub import CLIENT_ID, CLIENT_SECRET, FakeHub
from .conftest import Launch
from .proxy import forwarding_transport

pytestmark = pytest.mark.slow

HOST = "someone-chatacter.hf.space"


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    hub = FakeHub().start()
    yield hub
    hub.stop()


@pytest.fixture
def space(launch: Launch, hub: FakeHub) -> str:
    """app.py on a Space with `hf_oauth: true` (the variables the Hub sets) and sign-in on."""
    return launch(
        GRADIO_SERVER_NAME="0.0.0.0",
        SPACE_HOST=HOST,
        SPACE_ID="someone/chatacter",
        SYSTEM="spaces",
        OAUTH_CLIENT_ID=CLIENT_ID,
        OAUTH_CLIENT_SECRET=CLIENT_SECRET,
        OAUTH_SCOPES="openid profile",
        OPENID_PROVIDER_URL=hub.url,
        HF_ENDPOINT=hub.url,
        CHATTR_HF_SIGNIN="true",
        CHATTR_UPLOAD_MB_PER_MINUTE="1",
        # Remote media that do not answer: these turns are text only.
        CHATTR_VOCALIZR_URL="http://127.0.0.1:9",
        CHATTR_VISUALIZR_URL="http://127.0.0.1:9",
    )


def ingress(space: str) -> httpx.Client:
    """The Space's front door: https://HOST, forwarded to the container as the Hub's proxy does."""
    return httpx.Client(
        mounts={f"https://{HOST}": forwarding_transport(space, host=HOST)}, timeout=60
    )


def visit(door: httpx.Client, url: str, session: str | None) -> tuple[httpx.Response, str | None]:
    """One browser request: the session cookie goes to the Space's host only (kept by hand: the
    test's forwarding transport hides the host from httpx's cookie jar)."""
    headers = {"Cookie": f"session={session}"} if session and HOST in url else {}
    response = door.get(url, headers=headers)
    for header in response.headers.get_list("set-cookie"):
        cookie = SimpleCookie(header)
        if "session" in cookie:
            expires = cookie["session"]["expires"]
            deleted = bool(expires) and parsedate_to_datetime(expires) < datetime.now(UTC)
            session = None if deleted else cookie["session"].value
    return response, session


def sign_in(space: str) -> str:
    """A browser that clicks "Sign in with Hugging Face" and allows it: its session cookie."""
    door = ingress(space)
    step, session = visit(door, f"https://{HOST}/login/huggingface", None)
    for _ in range(6):  # chattr → the Hub's authorize → chattr's callback → the page
        if step.status_code not in (302, 303, 307):
            break
        target = str(httpx.URL(f"https://{HOST}/").join(step.headers["location"]))
        step, session = visit(door, target, session)
    assert step.status_code == 200, (step.status_code, step.text[:300])
    assert step.request.url.path == "/", step.request.url
    assert session, "no session cookie after sign-in"
    return session


def test_sign_in_is_required_and_works_by_page_session_and_by_token(
    space: str, hub: FakeHub, llm: FakeLLMServer, tmp_path: Path
) -> None:
    # The page shows the button, and anyone may still look at it.
    config = httpx.get(space + "/config").json()
    login = [c for c in config["components"] if c["props"].get("elem_id") == "chattr-login"]
    assert login and "Sign in" in str(login[0]["props"].get("value")), login
    assert httpx.get(space + "/").status_code == 200

    # Not signed in: turns are refused with what to do; so are uploads.
    anonymous = Client(space, verbose=False)
    with pytest.raises(Exception, match="Sign in with Hugging Face first"):
        anonymous.predict("Hello", "einstein", "", False, api_name="/chat")
    clip = tmp_path / "card.json"
    clip.write_text("{}")
    refused = httpx.post(space + "/gradio_api/upload", files={"files": clip.open("rb")})
    assert refused.status_code == 401 and "Sign in" in refused.json()["error"]

    # A token the Hub does not know is no better.
    with pytest.raises(Exception, match="Sign in with Hugging Face first"):
        Client(space, verbose=False, token="hf_made_up").predict(
            "Hello", "einstein", "", False, api_name="/chat"
        )

    # Signed in on the page: the session cookie carries it into the page's own API calls.
    session = sign_in(space)
    cookie = {"Cookie": f"session={session}"}
    llm.script("Science is a wonderful thing.")
    result = Client(space, verbose=False, headers=cookie).predict(
        "Hello", "einstein", "", False, api_name="/chat"
    )
    assert result["text"] == "Science is a wonderful thing." and result["errors"] == []
    uploaded = httpx.post(
        space + "/gradio_api/upload", files={"files": clip.open("rb")}, headers=cookie
    )
    assert uploaded.status_code == 200, uploaded.text

    # A script with the Hub token of a real account: asked once, then remembered.
    hub.tokens["hf_script_token"] = "grace"
    script = Client(space, verbose=False, token="hf_script_token")
    calls = hub.whoami_calls
    for line in ("One.", "Two."):
        llm.script(line)
        assert script.predict("Hi", "napoleon", "", False, api_name="/chat")["text"] == line
    assert hub.whoami_calls == calls + 1

    # Signing out deletes the browser's session cookie (a signed cookie: a copy of it stays
    # valid until the sign-in expires, as with every Gradio login).
    _, after = visit(ingress(space), f"https://{HOST}/logout", session)
    assert after is None, "signing out did not delete the session cookie"


def test_uploads_are_limited_per_client_by_size(space: str, tmp_path: Path) -> None:
    cookie = {"Cookie": f"session={sign_in(space)}"}
    clip = tmp_path / "clip.bin"
    clip.write_bytes(b"\0" * 300_000)  # three fit in the 1 MB a minute, a fourth does not

    def upload() -> httpx.Response:
        with clip.open("rb") as handle:
            return httpx.post(space + "/gradio_api/upload", files={"files": handle}, headers=cookie)

    assert [upload().status_code for _ in range(3)] == [200] * 3
    last = upload()
    assert last.status_code == 429 and "try again in" in last.json()["error"]
    assert "1 MB a minute" in last.json()["error"]
    assert int(last.headers["retry-after"]) >= 1
