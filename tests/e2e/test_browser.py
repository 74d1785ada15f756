"""The page in headless Chromium, as a person uses it: pick Einstein, talk, watch the answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chattr.media.local_stack import LocalStack
from chattr.testing.fake_llm import FakeLLMServer

from ..browsers import chromium, chromium_args
from ..conftest import REPO, StartApp

pytestmark = [pytest.mark.slow, pytest.mark.browser]

OUTPUT = REPO / "test-output" / "browser"
REPLY = (
    "Imagination is more important than knowledge. "
    "Knowledge is limited, while imagination embraces the entire world. "
    "That is why I played with thought experiments all my life."
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as p:
        # A persistent context on a fresh, empty profile folder (Chromium's --user-data-dir).
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            args=chromium_args(),
        )
        yield context
        context.close()


def media_state(page: Any, selector: str) -> dict[str, Any]:
    state: dict[str, Any] = page.eval_on_selector(
        selector,
        """el => ({src: el.currentSrc || el.src, ready: el.readyState, duration: el.duration,
                  width: el.videoWidth || 0, error: el.error ? el.error.code : null})""",
    )
    return state


def test_pick_einstein_talk_and_get_streamed_text_audio_and_video(
    browser: Any, start_app: StartApp, llm: FakeLLMServer, media_stack: LocalStack
) -> None:
    assert media_stack.vocalizr and media_stack.visualizr
    app = start_app(media_stack.vocalizr.url, media_stack.visualizr.url)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page = browser.new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(app.url, wait_until="load")

    # Pick Einstein from the gallery (his portrait, captioned with his name).
    page.get_by_label("Character").first.click()
    page.get_by_role("option", name="Albert Einstein").click()
    einstein = app.service.characters.get("einstein")
    page.get_by_text(einstein.greeting[:40]).first.wait_for(timeout=15_000)

    llm.script(REPLY)
    llm.state.tokens_per_s = 25  # slow enough to see the text stream in
    try:
        box = page.get_by_label("Your message")
        box.fill("What matters more, knowledge or imagination?")
        box.press("Enter")
        bot = page.locator("#chattr-chat .message.bot, #chattr-chat [data-testid='bot']").last
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = page.locator("#chattr-chat").inner_text()
            if "Imagination is more important" in text:
                seen.append(text)
            if "thought experiments all my life" in text:
                break
            time.sleep(0.1)
        assert seen, "the reply never appeared"
        assert any("thought experiments" not in t for t in seen), "the text did not stream"
        del bot
    finally:
        llm.state.tokens_per_s = 0

    # Per-sentence players appear while the media is made; the full clip once it is joined.
    page.wait_for_selector("#chattr-chat video", timeout=120_000)
    # The first sentence's clip starts by itself while later ones are still being made.
    first = page.locator("#chattr-chat figure", has_text="Sentence 1").locator("video")
    assert first.get_attribute("autoplay") is not None
    page.screenshot(path=str(OUTPUT / "einstein-streaming.png"), full_page=True)
    try:
        page.wait_for_function(
            """() => [...document.querySelectorAll('#chattr-chat figure')]
                     .some(f => f.innerText.includes('The whole reply')
                                && f.querySelector('video[src*="/media/"]'))""",
            timeout=60_000,
        )
    finally:
        (OUTPUT / "chat.html").write_text(page.inner_html("#chattr-chat"))
    whole = "#chattr-chat video[src*='/media/']"
    page.wait_for_function(
        f'() => document.querySelector("{whole}").readyState >= 2', timeout=30_000
    )
    video = media_state(page, whole)
    assert video["error"] is None and video["width"] > 0 and video["duration"] > 1
    assert httpx.get(video["src"]).status_code == 200
    page.screenshot(path=str(OUTPUT / "einstein-reply.png"), full_page=True)

    # The audio of each sentence loads and decodes in the browser too.
    audio_src = app.client().predict("Say it again.", "einstein", "", True, api_name="/chat")[
        "segments"
    ][0]["audio_url"]
    page.evaluate(
        """src => { const a = document.createElement('audio'); a.id = 'probe';
                    a.src = src; a.preload = 'auto'; document.body.appendChild(a); }""",
        audio_src,
    )
    page.wait_for_function("() => document.getElementById('probe').readyState >= 2")
    audio = media_state(page, "#probe")
    assert audio["error"] is None and audio["duration"] > 0.5


def test_the_page_fits_a_phone_width_window(browser: Any, start_app: StartApp) -> None:
    app = start_app()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page = browser.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(app.url, wait_until="load")
    page.get_by_label("Your message").wait_for()
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    page.screenshot(path=str(OUTPUT / "phone.png"), full_page=True)
    assert overflow <= 1, f"the page is {overflow}px wider than a phone's screen"
    # Every control a person uses has an accessible name.
    for label in ("Your message", "Character", "Speech and video"):
        assert page.get_by_label(label).count() >= 1
    for name in ("Regenerate", "Undo last turn", "New conversation"):
        assert page.get_by_role("button", name=name).count() == 1


def test_undo_regenerate_new_conversation_and_card_import(
    browser: Any, start_app: StartApp, llm: FakeLLMServer, tmp_path: Path
) -> None:
    import json

    app = start_app()
    page = browser.new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(app.url, wait_until="load")
    chat = page.locator("#chattr-chat")
    box = page.get_by_label("Your message")

    llm.script("First answer from the Emperor.")
    box.fill("Tell me about Austerlitz.")
    box.press("Enter")
    chat.get_by_text("First answer from the Emperor.").wait_for(timeout=30_000)

    # Regenerate: the same message is asked again and the new answer replaces the old.
    llm.script("Second, better answer.")
    page.get_by_role("button", name="Regenerate").click()
    chat.get_by_text("Second, better answer.").wait_for(timeout=30_000)
    assert chat.get_by_text("First answer from the Emperor.").count() == 0
    assert "Tell me about Austerlitz." in str(llm.requests[-1]["messages"][-1]["content"])

    # Undo: the turn disappears and the message comes back into the box to edit.
    page.get_by_role("button", name="Undo last turn").click()
    page.wait_for_function(
        "() => !document.querySelector('#chattr-chat').innerText.includes('Second, better')"
    )
    assert box.input_value() == "Tell me about Austerlitz."

    # New conversation: back to the greeting alone.
    llm.script("An answer to forget.")
    box.fill("Remember this.")
    box.press("Enter")
    chat.get_by_text("An answer to forget.").wait_for(timeout=30_000)
    page.get_by_role("button", name="New conversation").click()
    page.wait_for_function(
        "() => !document.querySelector('#chattr-chat').innerText.includes('An answer to forget')"
    )

    # Import a SillyTavern card from the page: it joins the picker and greets.
    card = {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": "Ada Lovelace",
            "description": "{{char}} is a mathematician who wrote the first program.",
            "personality": "curious",
            "scenario": "",
            "first_mes": "Good day, {{user}}. Shall we compute?",
            "mes_example": "",
        },
    }
    path = tmp_path / "ada.json"
    path.write_text(json.dumps(card))
    page.locator("#chattr-import input[type=file]").set_input_files(str(path))
    page.get_by_text("Imported").first.wait_for(timeout=30_000)
    chat.get_by_text("Good day, User. Shall we compute?").wait_for(timeout=30_000)
    assert "ada-lovelace" in app.service.characters.characters
    page.screenshot(path=str(OUTPUT / "imported-card.png"), full_page=True)
