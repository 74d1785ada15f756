"""Characters uploaded from the page: zipped folders (safely) and cards; and the CLI import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from chattr.characters.character_set import load_characters
from chattr.characters.uploads import UploadError, import_upload

YAML = "name: Grace Hopper\ndescription: Computer pioneer.\ngreeting: Hello, sailor.\n"


def make_zip(path: Path, files: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def test_a_zipped_folder_installs_as_a_character(tmp_path: Path) -> None:
    characters = tmp_path / "characters"
    characters.mkdir()
    upload = make_zip(
        tmp_path / "upload.zip",
        {
            "hopper/character.yaml": YAML,
            "hopper/knowledge/navy.md": "# Navy\nShe joined the Navy Reserve in 1943.",
        },
    )
    character = import_upload(upload, characters)
    assert character.id == "hopper" and character.name == "Grace Hopper"
    assert "knowledge/navy.md" in character.knowledge_documents()
    assert "hopper" in load_characters(characters).characters


def test_a_zip_with_the_yaml_at_its_top_takes_the_zip_name(tmp_path: Path) -> None:
    upload = make_zip(tmp_path / "grace.zip", {"character.yaml": YAML})
    assert import_upload(upload, tmp_path).id == "grace"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"evil/../../escape.txt": "x", "evil/character.yaml": YAML}, "unsafe path"),
        ({"/abs/character.yaml": YAML}, "unsafe path"),
        ({"hopper/readme.txt": "no yaml here"}, "no character.yaml"),
        ({"hopper/character.yaml": "name: [unclosed"}, "character.yaml"),
        ({"hopper/character.yaml": "name: Only a name\n"}, "greeting"),
        ({"Bad Name/character.yaml": YAML}, "not a valid character id"),
    ],
)
def test_bad_zips_are_refused_and_leave_nothing_behind(
    tmp_path: Path, files: dict[str, str | bytes], message: str
) -> None:
    characters = tmp_path / "characters"
    characters.mkdir()
    upload = make_zip(tmp_path / "upload.zip", files)
    with pytest.raises(UploadError, match=message):
        import_upload(upload, characters)
    assert list(characters.iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()


def test_an_existing_character_is_not_overwritten(tmp_path: Path) -> None:
    upload = make_zip(tmp_path / "upload.zip", {"hopper/character.yaml": YAML})
    import_upload(upload, tmp_path)
    with pytest.raises(UploadError, match="already exists"):
        import_upload(upload, tmp_path)


def test_a_file_that_is_neither_zip_nor_card_gets_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.json"
    bogus.write_text("{not json")
    with pytest.raises(UploadError, match=r"notes\.json"):
        import_upload(bogus, tmp_path)


@pytest.mark.slow
def test_the_import_card_command_writes_a_character_folder(tmp_path: Path) -> None:
    card = tmp_path / "card.json"
    card.write_text(
        json.dumps(
            {
                "spec": "chara_card_v2",
                "spec_version": "2.0",
                "data": {
                    "name": "Ada Lovelace",
                    "description": "Mathematician.",
                    "first_mes": "Hello, {{user}}.",
                },
            }
        )
    )
    env = {**os.environ, "CHATTR_CHARACTERS_DIR": str(tmp_path / "chars")}
    run = subprocess.run(
        [sys.executable, "-m", "chattr", "import-card", str(card)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "chars" / "ada-lovelace" / "character.yaml").is_file()
    again = subprocess.run(
        [sys.executable, "-m", "chattr", "import-card", str(card)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert again.returncode == 2 and "already exists" in again.stderr
