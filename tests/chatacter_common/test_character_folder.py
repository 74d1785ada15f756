"""The character-folder contract, and the three programs reading one folder alike."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from chatacter_common.character_folder import (
    CharacterError,
    character_folders,
    find_character_folder,
    is_character_id,
    load_character_media,
)
from chattr.characters.character_set import load_character, load_characters
from visualizr.portraits import CharacterPortraits
from visualizr.portraits import load_character as load_portrait

YAML = "name: Ada Lovelace\ndescription: Mathematician.\ngreeting: Good day.\n"


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "gray").save(buffer, format="PNG")
    return buffer.getvalue()


def character(root: Path, name: str = "ada", extra: str = "") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "character.yaml").write_text(YAML + extra)
    return folder


def test_files_named_in_the_yaml_are_the_ones_every_program_uses(tmp_path: Path) -> None:
    folder = character(
        tmp_path,
        extra="voice:\n  reference: clips/clip.wav\nportrait:\n  file: face.png\n"
        "  face_box: [8, 8, 40, 40]\n  mouth_box: [20, 36, 16, 6]\n",
    )
    (folder / "clips").mkdir()
    (folder / "clips" / "clip.wav").write_bytes(b"RIFF")
    (folder / "face.png").write_bytes(png())
    (folder / "portrait.png").write_bytes(png())  # the default name, not the one named
    (folder / "voice.wav").write_bytes(b"RIFF")

    chattr = load_character(folder)
    media = load_character_media(folder)
    assert chattr.voice_path() == media.voice_path() == (folder / "clips" / "clip.wav").resolve()
    assert chattr.portrait_path() == media.portrait_path() == (folder / "face.png").resolve()
    assert media.display_name == "Ada Lovelace"
    portrait = load_portrait(folder, max_pixels=10_000)
    assert portrait.face_box == (8.0, 8.0, 40.0, 40.0)
    assert portrait.mouth_box == (20.0, 36.0, 16.0, 6.0)


def test_without_portrait_file_the_usual_names_are_looked_for_in_order(tmp_path: Path) -> None:
    folder = character(tmp_path)
    (folder / "portrait.webp").write_bytes(png())
    (folder / "portrait.jpg").write_bytes(png())
    assert load_character(folder).portrait_path() == (folder / "portrait.jpg").resolve()
    assert load_character_media(folder).portrait_path() == (folder / "portrait.jpg").resolve()
    # Named explicitly, only that file counts, even when it is the default name.
    (folder / "character.yaml").write_text(YAML + "portrait:\n  file: portrait.png\n")
    assert load_character(folder).portrait_path() is None


def test_a_default_name_linking_out_is_refused_by_chattr_and_the_services(tmp_path: Path) -> None:
    root = tmp_path / "characters"
    folder = character(root)
    (tmp_path / "elsewhere.jpg").write_bytes(png())
    (folder / "portrait.jpg").symlink_to(tmp_path / "elsewhere.jpg")
    for load in (load_character, load_character_media):
        with pytest.raises(CharacterError) as caught:
            load(folder)
        assert caught.value.field == "portrait.file"
    portraits = CharacterPortraits(root, max_pixels=10_000)
    portraits.discover()
    assert portraits.ids() == []


@pytest.mark.parametrize("name", ["Ada", "ADA", "a" * 65, "-ada", "ada.old", "ad a"])
def test_one_id_rule(tmp_path: Path, name: str) -> None:
    root = tmp_path / "characters"
    folder = character(root, name)
    (folder / "portrait.png").write_bytes(png())
    assert not is_character_id(name)
    assert find_character_folder(root, name) is None
    with pytest.raises(CharacterError) as caught:
        load_character_media(folder)
    assert caught.value.field == "id"
    assert [error.field for error in load_characters(root).errors] == ["id"]
    portraits = CharacterPortraits(root, max_pixels=10_000)
    portraits.discover()
    assert portraits.ids() == []


def test_work_areas_are_no_characters_anywhere(tmp_path: Path) -> None:
    root = tmp_path / "characters"
    for name in ("ada", ".upload-ada-x1", "_staging"):
        (character(root, name) / "portrait.png").write_bytes(png())
    assert [folder.name for folder in character_folders(root)] == ["ada"]
    found = load_characters(root)
    assert list(found.characters) == ["ada"] and found.errors == []
    portraits = CharacterPortraits(root, max_pixels=10_000)
    portraits.discover()
    assert portraits.ids() == ["ada"]


def test_the_services_need_no_character_yaml(tmp_path: Path) -> None:
    folder = tmp_path / "ada"
    folder.mkdir()
    (folder / "voice.wav").write_bytes(b"RIFF")
    media = load_character_media(folder)
    assert media.voice_path() == (folder / "voice.wav").resolve()
    assert media.portrait_path() is None and media.display_name == "ada"


@pytest.mark.slow
def test_the_contract_is_light_to_import() -> None:
    code = (
        "import sys, chatacter_common.character_folder, chatacter_common.zero_gpu\n"
        "heavy = {'gradio', 'torch', 'chattr', 'vocalizr', 'visualizr', 'spaces'}\n"
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert run.stdout.strip() == "[]"
