"""A scene in the page, in headless Chromium, as a person uses it: pick Napoleon and Einstein,
start a scene, ask them both; each answers under its name and portrait, their clips play one
after the other, the stage shows who speaks; a reload keeps the scene."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from chattr.media.local_stack import LocalStack
from chattr.memory import SCENE_KEY
from chattr.testing.fake_llm import FakeLLMServer

from ..browsers import chromium, chromium_args
from ..conftest import REDIS_URL, REPO, StartApp

pytestmark = [pytest.mark.slow, pytest.mark.browser]

OUTPUT = REPO / "test-output" / "scene"
NAPOLEON = "The future belongs to the bold. Give me artillery and I will shape it."
EINSTEIN = "The future is not fixed, my friend. Imagination will decide it."
ASKED = "Napoleon and Einstein, what will the future bring?"

# Every play of a clip in the chat, and who the stage showed speaking while it played.
WATCH_JS = """
(() => {
  const log = {plays: [], ended: 0, stage: []};
  window.__scene = log;
  const speaker = (el) => {
    const figure = el.closest('figure');
    const found = figure && /chattr-by-([a-z0-9_-]+)/.exec(figure.className);
    return found ? found[1] : null;
  };
  const chatClips = () => Array.from(
    document.querySelectorAll('#chattr-chat audio, #chattr-chat video'));
  const inChat = (el) => el instanceof HTMLMediaElement && el.closest('#chattr-chat');
  document.addEventListener('play', (event) => {
    if (!inChat(event.target)) return;
    const others = chatClips().filter((m) => m !== event.target && !m.paused && !m.ended);
    log.plays.push({speaker: speaker(event.target), others: others.length,
                    caption: event.target.closest('figure').innerText});
  }, true);
  document.addEventListener('ended', (event) => {
    if (inChat(event.target)) log.ended += 1;
  }, true);
  document.addEventListener('timeupdate', (event) => {
    if (!inChat(event.target) || event.target.currentTime < 0.2) return;
    const slot = document.querySelector('#chattr-scene-stage .chattr-slot.speaking');
    const face = slot && slot.querySelector('video');
    log.stage.push({clip: speaker(event.target), slot: slot ? slot.dataset.member : null,
                    moving: !!(slot && slot.classList.contains('moving') && face && !face.paused)});
  }, true);
})();
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            # The clips play one after another, each started when the last ends.
            args=chromium_args("--autoplay-policy=no-user-gesture-required"),
        )
        yield context
        context.close()


def pick_members(page: Any, names: list[str]) -> None:
    picker = page.locator("#chattr-scene-members input")
    for name in names:
        picker.click()
        page.get_by_role("option", name=name).click()
    page.keyboard.press("Escape")


def test_a_scene_of_napoleon_and_einstein_answers_in_turn_and_survives_a_reload(
    browser: Any, start_app: StartApp, llm: FakeLLMServer, media_stack: LocalStack
) -> None:
    assert media_stack.vocalizr and media_stack.visualizr
    app = start_app(media_stack.vocalizr.url, media_stack.visualizr.url)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page = browser.new_page()
    page.add_init_script(WATCH_JS)
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.goto(app.url, wait_until="load")
    chat = page.locator("#chattr-chat")
    page.get_by_label("Your message").wait_for()

    # One member is no scene: the chat stays the one-to-one chat.
    pick_members(page, ["Napoleon Bonaparte"])
    page.get_by_role("button", name="Start scene").click()
    page.get_by_text("Pick two or more characters for a scene.").wait_for()
    assert chat.locator(".chattr-speaker").count() == 0

    # Two: the scene opens with both greetings, each under its speaker's name and portrait.
    pick_members(page, ["Albert Einstein"])
    page.get_by_role("button", name="Start scene").click()
    speakers = chat.locator(".chattr-speaker")
    speakers.nth(1).wait_for(timeout=15_000)
    assert speakers.all_inner_texts() == ["Napoleon Bonaparte", "Albert Einstein"]
    page.wait_for_function(
        """() => [...document.querySelectorAll('#chattr-chat .chattr-speaker img')]
                 .filter((img) => img.complete && img.naturalWidth > 0).length === 2"""
    )
    slots = page.locator("#chattr-scene-stage .chattr-slot")
    assert [slots.nth(i).get_attribute("data-member") for i in range(2)] == [
        "napoleon",
        "einstein",
    ]
    assert page.get_by_role("button", name="Undo last turn").is_hidden()

    llm.script(NAPOLEON, EINSTEIN)
    box = page.get_by_label("Your message")
    box.fill(ASKED)
    box.press("Enter")
    chat.get_by_text("Give me artillery", exact=False).wait_for(timeout=30_000)
    chat.get_by_text("Imagination will decide it", exact=False).wait_for(timeout=30_000)
    assert speakers.all_inner_texts()[2:] == ["Napoleon Bonaparte", "Albert Einstein"]

    # Every sentence's clip plays, one at a time, Napoleon's before Einstein's.
    page.wait_for_function(
        """() => document.querySelectorAll('#chattr-chat .chattr-pending').length === 0
              && document.querySelectorAll('#chattr-chat figure.chattr-clip').length > 0""",
        timeout=90_000,
    )
    sentences = page.evaluate(
        """() => [...document.querySelectorAll('#chattr-chat figure.chattr-clip')]
                 .filter((f) => !f.innerText.startsWith('The whole reply')).length"""
    )
    assert sentences == 4  # two sentences each
    page.screenshot(path=str(OUTPUT / "scene-playing.png"), full_page=True)
    page.wait_for_function(f"() => window.__scene.ended >= {sentences}", timeout=90_000)
    log = page.evaluate("() => window.__scene")
    assert [p["speaker"] for p in log["plays"]] == ["napoleon"] * 2 + ["einstein"] * 2, log
    assert all(p["others"] == 0 for p in log["plays"]), log["plays"]
    assert not any(p["caption"].startswith("The whole reply") for p in log["plays"])
    # While a clip played, the stage showed its speaker, moving (its video in the slot).
    assert log["stage"] and all(s["clip"] == s["slot"] for s in log["stage"]), log["stage"]
    assert {s["clip"] for s in log["stage"] if s["moving"]} == {"napoleon", "einstein"}
    # Once the last has played nobody is speaking.
    page.wait_for_function(
        "() => !document.querySelector('#chattr-scene-stage .chattr-slot.speaking')"
    )
    page.screenshot(path=str(OUTPUT / "scene-done.png"), full_page=True)

    # A reload keeps the scene: its members, its transcript under their names, its stage.
    page.reload(wait_until="load")
    chat.get_by_text("Give me artillery", exact=False).wait_for(timeout=30_000)
    chat.get_by_text("Imagination will decide it", exact=False).wait_for()
    assert (
        chat.locator(".chattr-speaker").all_inner_texts()
        == [
            "Napoleon Bonaparte",
            "Albert Einstein",
        ]
        * 2
    )
    page.locator("#chattr-scene-stage .chattr-slot").nth(1).wait_for()
    members = page.locator("#chattr-scene-members").inner_text()
    assert "Napoleon Bonaparte" in members and "Albert Einstein" in members
    assert page.get_by_role("button", name="Leave scene").is_visible()
    page.screenshot(path=str(OUTPUT / "scene-reloaded.png"), full_page=True)

    # The scene's memory is its own: both replies, each with its speaker.
    store = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    keys = list(store.scan_iter(f"{app.settings.redis_prefix}:memory:*"))
    store.close()
    sessions = [key.split(":")[-2] for key in keys if key.endswith(f":{SCENE_KEY}")]
    assert len(keys) == 1  # no one-to-one chat's memory
    assert len(sessions) == 1
    lines = app.service.memory.recent(sessions[0], SCENE_KEY)
    assert [(t.speaker, t.assistant) for t in lines[2:]] == [
        ("napoleon", NAPOLEON),
        ("einstein", EINSTEIN),
    ]
