"""Sign-in (CHATTR_AUTH) against the real app: the page and every API route are closed without
it, a wrong password is refused, the right one works with gradio_client; /healthz stays open."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from pydantic import SecretStr

from chattr.access.gate import auth_pairs, parse_auth
from chattr.run.assembly import create_app
from chattr.settings import Settings

from ..conftest import StartApp

PAIRS = "ada:lovelace-1843,alan:turing 1936"


@pytest.fixture
def guarded(start_app: StartApp):  # type: ignore[no-untyped-def]
    return start_app(auth=PAIRS)


def test_api_client_signs_in_and_chats(guarded) -> None:  # type: ignore[no-untyped-def]
    for user, password in parse_auth(PAIRS):
        client = Client(guarded.url, auth=(user, password), verbose=False)
        result = client.predict("Hello there.", "curie", "", False, api_name="/chat")
        assert result["text"].startswith("You said Hello there")


def test_wrong_password_and_no_password_are_refused(guarded) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Exception) as wrong:
        Client(guarded.url, auth=("ada", "babbage"), verbose=False)
    assert "lovelace" not in str(wrong.value)
    with pytest.raises(Exception):  # noqa: B017 - gradio_client raises its own kinds here
        Client(guarded.url, verbose=False).predict("Hello.", "curie", "", False, api_name="/chat")
    with httpx.Client(base_url=guarded.url, timeout=10) as http:
        bad = http.post("/login", data={"username": "ada", "password": "babbage"})
        assert bad.status_code in (400, 401) and "access-token" not in bad.headers.get(
            "set-cookie", ""
        )
        unknown = http.post("/login", data={"username": "eve", "password": "lovelace-1843"})
        assert unknown.status_code in (400, 401)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/config"),
        ("GET", "/gradio_api/info"),
        ("GET", "/gradio_api/openapi.json"),
        ("POST", "/gradio_api/call/chat"),
        ("POST", "/gradio_api/call/export"),
        ("POST", "/gradio_api/call/forget"),
        ("POST", "/gradio_api/queue/join"),
        ("POST", "/gradio_api/upload"),
        ("POST", "/gradio_api/run/chat"),
    ],
)
def test_every_api_route_needs_sign_in(guarded, method: str, path: str) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=guarded.url, timeout=10) as http:
        response = http.request(method, path, json={"data": ["Hi", "curie", "", False]})
    assert response.status_code == 401, (path, response.status_code, response.text[:200])


def test_page_shows_the_sign_in_form_not_the_app(guarded) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=guarded.url, timeout=10) as http:
        page = http.get("/")
        assert page.status_code == 200
        assert '"auth_required":true' in page.text.replace(" ", "")
        assert "Download my conversation" not in page.text  # no component config leaks out
        for probe in ("/livez", "/readyz", "/healthz"):  # probes need no password
            assert http.get(probe).json()["status"] == "ok"
        # Signed in with the cookie the login sets, the same client reaches the config.
        assert http.post("/login", data={"username": "alan", "password": "turing 1936"}).json()[
            "success"
        ]
        assert http.get("/config").status_code == 200


def test_without_chattr_auth_the_page_is_open(start_app: StartApp) -> None:
    app = start_app()
    with httpx.Client(base_url=app.url, timeout=10) as http:
        assert http.get("/config").status_code == 200
        assert http.get("/gradio_api/info").status_code == 200


def test_malformed_auth_stops_start_up_without_showing_the_password(
    start_app: StartApp, tmp_path: Path
) -> None:
    settings = Settings(auth=SecretStr("ada:lovelace-1843,nopasswordhere"), characters_dir=tmp_path)
    with pytest.raises(ValueError, match="entry 2 is not `user:password`") as error:
        auth_pairs(settings)
    assert "lovelace" not in str(error.value) and "nopasswordhere" not in str(error.value)
    with pytest.raises(ValueError, match="entry 1"):
        parse_auth(":empty-user")
    assert auth_pairs(Settings(auth=SecretStr("  "))) is None
    # The app refuses to start on it rather than starting open.
    from chattr.run.assembly import create_service

    with pytest.raises(ValueError, match="CHATTR_AUTH"):
        create_app(settings, create_service(settings, start_retrieval=False))
