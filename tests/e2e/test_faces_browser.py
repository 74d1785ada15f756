"""The page shows the feeling: beside the chat, the sprite for the emotion of the sentence being
said (else the portrait), and behind the chat the character's background."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageOps, ImageStat

from chattr.media.local_stack import LocalStack
from chattr.testing.fake_llm import FakeLLMServer

from ..chattr.characters.test_charx import full_charx
from ..conftest import REPO, StartApp
from .test_browser import browser

__all__ = ["browser"]  # the fixture, shared with the other page tests

pytestmark = [pytest.mark.slow, pytest.mark.browser]

OUTPUT = REPO / "test-output" / "browser"
CHARACTER = "hortense"
YAML = """\
name: Hortense
description: A painted lady whose face follows what she says.
greeting: Good day. Ask me about the battle.
"""
# joy and sadness have sprites; anger has none, so its sentence shows the portrait.
REPLY = (
    "[joy] We won at Marengo today! "
    "[sadness] So many friends were lost in the snow. "
    "[anger] And the Austrians will pay for it."
)
TINTS = {"joy": ((60, 40, 0), (255, 230, 60)), "sadness": ((0, 10, 60), (90, 160, 255))}


@pytest.fixture
def hortense(characters_dir: Path, assets: Path) -> Iterator[Path]:
    """A character folder with a portrait, tinted sprites for joy and sadness, a background."""
    folder = characters_dir / CHARACTER
    (folder / "expressions").mkdir(parents=True)
    (folder / "character.yaml").write_text(YAML)
    with Image.open(assets / "portrait_painting.jpg") as painting:
        grey = ImageOps.grayscale(painting.convert("RGB"))
        grey.thumbnail((384, 384))
        grey.convert("RGB").save(folder / "portrait.png")
        for label, (dark, light) in TINTS.items():
            ImageOps.colorize(grey, dark, light).save(folder / "expressions" / f"{label}.png")
    Image.linear_gradient("L").resize((640, 400)).convert("RGB").save(folder / "background.jpg")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the session's other tests list characters


def face_colour(page: Any) -> tuple[float, float]:
    """The red and blue means of the face as the browser draws it."""
    shot = Image.open(io.BytesIO(page.locator("#chattr-face img").screenshot())).convert("RGB")
    red, _, blue = ImageStat.Stat(shot).mean
    return red, blue


def wait_face(page: Any, emotion: str, source: str) -> None:
    page.wait_for_function(
        f"""() => {{ const f = document.querySelector('#chattr-face[data-emotion="{emotion}"]');
                    const img = f && f.querySelector('img');
                    return f && f.dataset.source === '{source}' && img.complete
                           && img.naturalWidth > 0; }}""",
        timeout=60_000,
    )


def test_the_face_follows_each_sentences_emotion_over_the_characters_background(
    browser: Any,
    start_app: StartApp,
    llm: FakeLLMServer,
    media_stack: LocalStack,
    hortense: Path,
    characters_dir: Path,
) -> None:
    assert media_stack.vocalizr
    # Speech only: each sentence's segment carries its emotion; no video is needed to show it.
    app = start_app(media_stack.vocalizr.url)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page = browser.new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(app.url, wait_until="load")
    page.get_by_label("Character").first.click()
    page.get_by_role("option", name="Hortense").click()
    page.get_by_text("Ask me about the battle").first.wait_for(timeout=15_000)

    # Before a word: the portrait, over the background.
    wait_face(page, "neutral", "portrait")
    backdrop = page.eval_on_selector("#chattr-chat", "el => getComputedStyle(el).backgroundImage")
    assert f"_backgrounds/{CHARACTER}.jpg" in backdrop
    background_url = backdrop.split('url("', 1)[1].split('")', 1)[0]
    assert httpx.get(background_url).status_code == 200
    neutral_red, neutral_blue = face_colour(page)
    assert abs(neutral_red - neutral_blue) < 8  # a grey portrait

    llm.script(REPLY)
    llm.state.tokens_per_s = 3  # each sentence's face stays long enough to be seen
    try:
        box = page.get_by_label("Your message")
        box.fill("How was the battle?")
        box.press("Enter")
        wait_face(page, "joy", "sprite")
        red, blue = face_colour(page)
        assert red > blue + 40, (red, blue)  # the golden joy sprite
        page.screenshot(path=str(OUTPUT / "face-joy.png"), full_page=True)
        wait_face(page, "sadness", "sprite")
        red, blue = face_colour(page)
        assert blue > red + 40, (red, blue)  # the blue sadness sprite
        page.screenshot(path=str(OUTPUT / "face-sadness.png"), full_page=True)
    finally:
        llm.state.tokens_per_s = 0
    # Anger has no sprite: the portrait says it, captioned with the feeling.
    wait_face(page, "anger", "portrait")
    assert page.locator("#chattr-face figcaption").inner_text() == "Hortense, anger"
    page.screenshot(path=str(OUTPUT / "face-anger-portrait.png"), full_page=True)
    sprite = page.eval_on_selector("#chattr-face img", "img => img.src")
    assert "_expressions" not in sprite

    # The copies are served; the character's own folder is not.
    secret = httpx.get(f"{app.url}/gradio_api/file={characters_dir / CHARACTER / 'portrait.png'}")
    assert secret.status_code in (403, 404), secret.status_code


def test_a_charx_imported_on_the_page_says_what_it_left_out_and_shows_its_background(
    browser: Any, start_app: StartApp, characters_dir: Path, tmp_path: Path
) -> None:
    app = start_app()
    page = browser.new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(app.url, wait_until="load")
    page.get_by_label("Your message").wait_for()
    charx = full_charx(tmp_path / "wren.charx")
    try:
        page.locator("#chattr-import input[type=file]").set_input_files(str(charx))
        note = page.locator("#chattr-import-note")
        note.get_by_text("Imported").wait_for(timeout=30_000)
        # The remote sprite is never fetched, the faceless one is dropped: the page says so.
        text = note.inner_text()
        assert "Left out" in text and "'fear'" in text and "'anger'" in text, text
        wait_face(page, "neutral", "portrait")
        backdrop = page.eval_on_selector(
            "#chattr-chat", "el => getComputedStyle(el).backgroundImage"
        )
        assert "_backgrounds/wren-ashby.jpg" in backdrop
        page.screenshot(path=str(OUTPUT / "charx-imported.png"), full_page=True)
    finally:
        shutil.rmtree(characters_dir / "wren-ashby", ignore_errors=True)
