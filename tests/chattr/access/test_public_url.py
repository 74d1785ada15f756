"""chattr's public address: forwarded headers from trusted proxies only, the settings around it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chattr.access.public_url import ForwardedHeaders, parse_trusted, request_base_url
from chattr.media.relay import service_file_id
from chattr.run.serving import make_fanout
from chattr.settings import Settings

PROXY = {
    "x-forwarded-host": "chat.example.org",
    "x-forwarded-proto": "https",
    "x-forwarded-prefix": "/friends/",
    "x-forwarded-for": "203.0.113.7, 10.0.0.2",
}


async def echo(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "base": request_base_url(request),
            "client": request.client.host if request.client else None,
            "path": request.url.path,
            "forwarded": sorted(h for h in request.headers if h.startswith("x-forwarded")),
        }
    )


async def seen(
    peer: str, trusted: str, headers: dict[str, str], path: str = "/x"
) -> dict[str, Any]:
    app = ForwardedHeaders(Starlette(routes=[Route("/x", echo)]), parse_trusted(trusted))
    transport = httpx.ASGITransport(app=app, client=(peer, 51000))
    async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.5:7860") as client:
        response = await client.get(path, headers=headers)
    assert response.status_code == 200
    echoed: dict[str, Any] = response.json()
    return echoed


async def test_a_trusted_proxy_sets_scheme_host_prefix_and_client() -> None:
    got = await seen("10.0.0.2", "10.0.0.0/8", PROXY)
    assert got["base"] == "https://chat.example.org/friends"
    # The nearest untrusted address in the chain is the client; the headers are used up.
    assert got["client"] == "203.0.113.7"
    assert got["path"] == "/friends/x"
    assert got["forwarded"] == []


async def test_the_client_is_the_nearest_hop_that_is_not_a_trusted_proxy() -> None:
    trusted = "127.0.0.1, 10.0.0.0/8"
    # Entries left of the first untrusted hop are the client's own claims: never believed.
    chain = {"x-forwarded-for": "6.6.6.6, 198.51.100.1, 10.1.2.3"}
    assert (await seen("127.0.0.1", trusted, chain))["client"] == "198.51.100.1"
    # A garbled hop ends the walk at the last address that could be checked.
    garbled = {"x-forwarded-for": "6.6.6.6, not-an-ip, 10.1.2.3"}
    assert (await seen("127.0.0.1", trusted, garbled))["client"] == "10.1.2.3"
    assert (await seen("127.0.0.1", trusted, {"x-forwarded-for": "junk"}))["client"] == "127.0.0.1"
    # Trusting every peer (a Space), only the hop its front proxy added counts.
    assert (await seen("10.9.9.9", "*", chain))["client"] == "10.1.2.3"


async def test_an_untrusted_peer_cannot_choose_the_host_replies_point_at() -> None:
    got = await seen("192.0.2.9", "10.0.0.0/8,127.0.0.1", PROXY)
    assert got["base"] == "http://10.0.0.5:7860"
    assert got["client"] == "192.0.2.9"
    assert got["forwarded"] == []  # removed, so Gradio does not honour them either


async def test_star_trusts_every_peer_and_bad_values_are_ignored() -> None:
    got = await seen("192.0.2.9", "*", {"x-forwarded-proto": "https"})
    assert got["base"] == "https://10.0.0.5:7860"
    bad = {
        "x-forwarded-host": "evil.test/other",
        "x-forwarded-proto": "gopher",
        "x-forwarded-prefix": "//evil.test",
    }
    assert (await seen("192.0.2.9", "*", bad))["base"] == "http://10.0.0.5:7860"
    # Without forwarded headers the request passes untouched.
    assert (await seen("192.0.2.9", "", {}))["base"] == "http://10.0.0.5:7860"


def test_trusted_proxies_setting_defaults_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPACE_HOST", raising=False)
    local = Settings(_env_file=None)  # type: ignore[call-arg]
    assert [str(n) for n in local.trusted_proxy_networks() or ()] == ["127.0.0.1/32", "::1/128"]
    assert local.fixed_public_url is None
    monkeypatch.setenv("SPACE_HOST", "someone-chatacter.hf.space")
    space = Settings(_env_file=None)  # type: ignore[call-arg]
    assert space.trusted_proxy_networks() is None  # the Space's ingress is the only way in
    assert space.fixed_public_url == "https://someone-chatacter.hf.space"
    assert Settings(public_url="https://chat.example.org/").fixed_public_url == (
        "https://chat.example.org"
    )
    with pytest.raises(ValidationError, match="CHATTR_TRUSTED_PROXIES"):
        Settings(trusted_proxies="10.0.0.0/8, my-proxy")


def test_only_the_services_own_file_ids_are_taken_from_their_urls() -> None:
    wav = "0123456789abcdef0123456789abcdef.wav"
    assert service_file_id("vocalizr", f"http://127.0.0.1:9/files/{wav}") == wav
    assert service_file_id("vocalizr", f"http://h/vocalizr/files/{wav}?format=mp3") == wav
    assert service_file_id("visualizr", f"http://127.0.0.1:9/files/{wav}") is None
    assert service_file_id("vocalizr", f"http://127.0.0.1:9/other/{wav}") is None
    assert service_file_id("vocalizr", "http://127.0.0.1:9/files/..%2fsecret.wav") is None


def test_files_of_the_services_chattr_runs_are_relayed_by_default(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    remote = make_fanout(settings, "http://v:1", "http://w:2")
    assert remote.relay == frozenset()  # their own public URLs stand
    local = make_fanout(settings, "http://v:1", "http://w:2", own_services=frozenset({"vocalizr"}))
    assert local.relay == {"vocalizr"}
    wav = "0123456789abcdef0123456789abcdef.wav"
    assert local.public_file_url("vocalizr", f"http://v:1/files/{wav}", "https://c.org/x") == (
        f"https://c.org/x/vocalizr/files/{wav}"
    )
    assert local.public_file_url("visualizr", "http://w:2/files/a.mp4", "https://c.org") == (
        "http://w:2/files/a.mp4"
    )
    forced = make_fanout(settings.model_copy(update={"relay_service_files": True}), "a", "b")
    assert forced.relay == {"vocalizr", "visualizr"}
    off = settings.model_copy(update={"relay_service_files": False})
    assert make_fanout(off, "a", "b", own_services=frozenset({"vocalizr"})).relay == frozenset()
