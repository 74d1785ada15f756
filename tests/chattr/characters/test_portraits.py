"""The page's copies of a character's pictures: sprites and backgrounds beside the portraits,
each an image of bounded size, never a file from outside the character's folder."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from PIL import Image

from chattr.characters.character_set import load_character
from chattr.characters.portraits import MAX_SHOWN_PIXELS, PortraitShelf
from chattr.web.handlers import served_url

YAML = "name: Hortense\ndescription: A painted lady.\ngreeting: Good day.\n"


def picture(path: Path, size: tuple[int, int] = (32, 32), colour: str = "gold") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "characters" / "hortense"
    folder.mkdir(parents=True)
    (folder / "character.yaml").write_text(YAML)
    picture(folder / "portrait.png", colour="grey")
    return folder


def test_sprites_and_the_background_are_copied_beside_the_portraits(
    folder: Path, tmp_path: Path
) -> None:
    picture(folder / "expressions" / "joy.png")
    picture(folder / "background.jpg", (64, 40), "navy")
    shelf = PortraitShelf(tmp_path / "data" / "portraits")
    character = load_character(folder)

    joy = shelf.sprite_for(character, "joy")
    background = shelf.background_for(character)
    portrait = shelf.path_for(character)
    assert joy == shelf.folder / "_expressions" / "hortense" / "joy.png"
    assert background == shelf.folder / "_backgrounds" / "hortense.jpg"
    assert portrait == shelf.folder / "hortense.png"
    assert joy.read_bytes() == (folder / "expressions" / "joy.png").read_bytes()
    assert background.read_bytes() == (folder / "background.jpg").read_bytes()
    # A label with no sprite, or one that is no emotion label at all, has no copy.
    assert shelf.sprite_for(character, "sadness") is None
    assert shelf.sprite_for(character, "../portrait") is None


def test_a_sprite_in_another_format_replaces_the_old_copy(folder: Path, tmp_path: Path) -> None:
    shelf = PortraitShelf(tmp_path / "shelf")
    old = picture(folder / "expressions" / "joy.png")
    first = shelf.sprite_for(load_character(folder), "joy")
    assert first is not None and first.is_file()
    old.unlink()
    picture(folder / "expressions" / "joy.webp")
    second = shelf.sprite_for(load_character(folder), "joy")
    assert second is not None and second.suffix == ".webp" and second.is_file()
    assert not first.exists()


def test_a_sprite_that_is_not_an_image_or_too_large_is_not_shown(
    folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (folder / "expressions").mkdir()
    (folder / "expressions" / "joy.png").write_bytes(b"<script>alert(1)</script>")
    side = int(MAX_SHOWN_PIXELS**0.5) + 1
    picture(folder / "background.png", (side, side))  # one flat colour: a small file
    shelf = PortraitShelf(tmp_path / "shelf")
    character = load_character(folder)
    with caplog.at_level(logging.WARNING):
        assert shelf.sprite_for(character, "joy") is None
        assert shelf.background_for(character) is None
    assert "expressions/joy joy.png: not an image" in caplog.text
    assert f"{side}x{side} pixels" in caplog.text
    assert not any(shelf.folder.rglob("joy.*")) and not any(shelf.folder.rglob("hortense.png*"))


def test_a_sprite_linked_from_outside_the_folder_is_never_copied(
    folder: Path, tmp_path: Path
) -> None:
    outside = picture(tmp_path / "elsewhere" / "secret.png")
    (folder / "expressions").mkdir()
    (folder / "expressions" / "joy.png").symlink_to(outside)
    shelf = PortraitShelf(tmp_path / "shelf")
    assert shelf.sprite_for(load_character(folder), "joy") is None


def test_served_urls_are_relative_and_percent_encoded() -> None:
    url = served_url(Path('/data/a "quoted" <folder>/x.png'))
    assert url == "gradio_api/file=/data/a%20%22quoted%22%20%3Cfolder%3E/x.png"
