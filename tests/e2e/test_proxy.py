"""chattr behind a reverse proxy, under another host name and a path prefix: the page, its API,
and every clip of a reply load from there, as from a browser on another machine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client

from chattr.media.local_stack import LocalStack
from chattr.testing.fake_llm import FakeLLMServer
from chattr.testing.threaded_server import ThreadedServer

from ..browsers import chromium, chromium_args
from ..conftest import REPO, StartApp
from .proxy import reverse_proxy

pytestmark = [pytest.mark.slow, pytest.mark.browser]

OUTPUT = REPO / "test-output" / "browser"
HOST = "other.test"
PREFIX = "/chat"
REPLY = "Imagination is more important than knowledge. Knowledge is limited."


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium that resolves other.test to this machine (and nothing else changed)."""
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            args=chromium_args(f"--host-resolver-rules=MAP {HOST} 127.0.0.1"),
        )
        yield context
        context.close()


@pytest.fixture
def proxied(start_app: StartApp, media_stack: LocalStack) -> Iterator[tuple[ThreadedServer, Any]]:
    """chattr with the local services relayed (as `chattr` runs them), behind the proxy."""
    assert media_stack.vocalizr and media_stack.visualizr
    app = start_app(media_stack.vocalizr.url, media_stack.visualizr.url, relay_service_files=True)
    with ThreadedServer(reverse_proxy(app.server.url, prefix=PREFIX)) as proxy:
        yield proxy, app


def reply_urls(result: dict[str, Any]) -> list[str]:
    urls = [result["audio_url"], result["video_url"]]
    for segment in result["segments"]:
        urls += [segment["audio_url"], segment["video_url"]]
    return urls


def test_every_clip_of_a_reply_loads_in_the_browser_through_the_proxy(
    browser: Any, proxied: tuple[ThreadedServer, Any], llm: FakeLLMServer
) -> None:
    proxy, _app = proxied
    origin = f"http://{HOST}:{proxy.port}"
    page = browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        page.goto(f"{origin}{PREFIX}/", wait_until="load")
        page.get_by_label("Character").first.click()
        page.get_by_role("option", name="Albert Einstein").click()
        # One event sets the character, the chat and the card: once the card shows him, he's on.
        page.locator("#chattr-card").get_by_text("Albert Einstein").wait_for(timeout=60_000)

        llm.script(REPLY)
        box = page.get_by_label("Your message")
        box.fill("What matters more?")
        box.press("Enter")
        # Both sentences' clips, then the whole reply's.
        page.wait_for_function(
            """() => document.querySelectorAll('#chattr-chat video').length >= 3
                     && [...document.querySelectorAll('#chattr-chat figure')]
                        .some(f => f.innerText.includes('The whole reply'))""",
            timeout=180_000,
        )
    finally:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUTPUT / "behind-proxy.png"), full_page=True)
    sources = page.eval_on_selector_all(
        "#chattr-chat video, #chattr-chat audio", "els => els.map(e => e.src)"
    )
    assert len(sources) == 3 and len(set(sources)) == 3, sources
    assert all(src.startswith(f"{origin}{PREFIX}/") for src in sources), sources
    # Every clip plays in the page: loaded far enough to start, no media error.
    page.wait_for_function(
        """() => [...document.querySelectorAll('#chattr-chat video, #chattr-chat audio')]
                 .every(e => e.readyState >= 2 || e.error)""",
        timeout=60_000,
    )
    states = page.eval_on_selector_all(
        "#chattr-chat video, #chattr-chat audio",
        """els => els.map(e => ({src: e.src, ready: e.readyState, video: e.tagName === 'VIDEO',
                                  width: e.videoWidth || 0,
                                  error: e.error ? e.error.code : null}))""",
    )
    for state in states:
        assert state["error"] is None and state["ready"] >= 2, state
        assert state["video"] and state["width"] > 0, state
    # The page (its scripts, the queue, the portraits) and the clips came from the proxy alone,
    # all under the prefix; but for Gradio's PWA manifest, which its page names at the root.
    elsewhere = [
        url
        for url in requested
        if not url.startswith(f"{origin}{PREFIX}/") and url != f"{origin}/manifest.json"
    ]
    assert requested and not elsewhere, elsewhere


def test_the_api_through_the_proxy_answers_urls_under_it_that_load(
    proxied: tuple[ThreadedServer, Any], llm: FakeLLMServer
) -> None:
    proxy, app = proxied
    base = f"{proxy.url}{PREFIX}"
    llm.script(REPLY)
    result = Client(base + "/", verbose=False).predict(
        "Hello", "einstein", "", True, api_name="/chat"
    )
    assert result["errors"] == [], result["errors"]
    urls = reply_urls(result)
    assert len(urls) == 6 and all(url.startswith(base + "/") for url in urls), urls
    for url in urls:
        response = httpx.get(url, headers={"range": "bytes=0-99"})
        assert response.status_code == 206 and len(response.content) == 100, url
    # Straight to chattr (no proxy), the same app answers its own address.
    llm.script(REPLY)
    direct = app.client().predict("Hello", "einstein", "", True, api_name="/chat")
    assert all(url.startswith(app.server.url + "/") for url in reply_urls(direct))


def test_a_scene_through_the_proxy_answers_every_members_urls_under_it_that_load(
    proxied: tuple[ThreadedServer, Any], llm: FakeLLMServer
) -> None:
    proxy, _ = proxied
    base = f"{proxy.url}{PREFIX}"
    llm.script("Austerlitz was my finest day.", REPLY)
    result = Client(base + "/", verbose=False).predict(
        message="Tell me something true.",
        characters=["napoleon", "einstein"],
        session_id="",
        media=True,
        strategy="list",
        speaker="",
        api_name="/scene",
    )
    assert result["errors"] == [], result["errors"]
    assert [reply["character"] for reply in result["replies"]] == ["napoleon", "einstein"]
    urls = [url for reply in result["replies"] for url in reply_urls(reply)]
    # Each reply's whole audio and video, and each sentence's: one sentence, then two.
    assert len(urls) == 2 + 2 + 2 + 4 and all(url.startswith(base + "/") for url in urls), urls
    for url in urls:
        response = httpx.get(url, headers={"range": "bytes=0-99"})
        assert response.status_code == 206 and len(response.content) == 100, url


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(
    start_app: StartApp, llm: FakeLLMServer, media_stack: LocalStack
) -> None:
    assert media_stack.vocalizr and media_stack.visualizr
    app = start_app(
        media_stack.vocalizr.url,
        media_stack.visualizr.url,
        relay_service_files=True,
        trusted_proxies="10.9.8.7",  # not this machine
    )
    spoofed = {"x-forwarded-host": "evil.test", "x-forwarded-proto": "https"}
    llm.script(REPLY)
    client = Client(app.server.url + "/", verbose=False, headers=spoofed)
    result = client.predict("Hello", "einstein", "", True, api_name="/chat")
    urls = reply_urls(result)
    assert len(urls) == 6 and all(url.startswith(app.server.url + "/") for url in urls), urls
