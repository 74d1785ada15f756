"""CHARX cards (Character Card V3's zip) made here, with sprites and a lorebook, imported through
`chattr import-card` and through the function the page's upload calls; bad ones refused."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from chattr.characters.cards import CardError, import_card
from chattr.characters.character_set import load_character
from chattr.characters.lorebook import read_lorebook
from chattr.characters.uploads import UploadError, import_upload

ASSETS = Path(__file__).resolve().parents[3].parent / "shared" / "assets"
PHOTO = ASSETS / "portrait_photo_bw.jpg"
PAINTING = ASSETS / "portrait_painting.jpg"


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def no_face() -> bytes:
    """A smooth gradient: an image, with no face in it."""
    ramp = np.tile(np.linspace(0, 255, 256, dtype=np.uint8), (256, 1))
    return png(Image.fromarray(ramp))


def card(assets: list[dict[str, str]], spec: str = "chara_card_v3") -> dict[str, Any]:
    return {
        "spec": spec,
        "spec_version": "3.0",
        "data": {
            "name": "Wren Ashby",
            "description": "{{char}} keeps the lighthouse.",
            "first_mes": "Mind the stairs, {{user}}.",
            "character_book": {
                "name": "Lighthouse",
                "entries": [
                    {"keys": ["lamp"], "content": "The lamp is a Fresnel lens.", "enabled": True},
                    {"keys": ["storm"], "content": "The storm of 1899.", "enabled": True},
                ],
            },
            "assets": assets,
        },
    }


def asset(kind: str, name: str, uri: str, ext: str = "png") -> dict[str, str]:
    return {"type": kind, "name": name, "uri": uri, "ext": ext}


FULL_ASSETS = [
    asset("icon", "main", "embeded://assets/icon/images/main.png"),
    asset("emotion", "joy", "embeded://assets/emotion/joy.jpg", "jpg"),
    asset("emotion", "Sad", "embeded://assets/emotion/sad.png"),
    asset("emotion", "anger", "embeded://assets/emotion/anger.png"),
    asset("emotion", "fear", "https://example.invalid/fear.png"),
    asset("emotion", "smug", "embeded://assets/emotion/joy.jpg", "jpg"),
    asset("background", "main", "embeded://assets/background/hall.jpg", "jpg"),
]


def make_charx(
    path: Path,
    document: dict[str, Any] | None,
    files: dict[str, bytes] | None = None,
    prefix: bytes = b"",
) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if document is not None:
            archive.writestr("card.json", json.dumps(document))
        for name, data in (files or {}).items():
            archive.writestr(name, data)
    path.write_bytes(prefix + buffer.getvalue())
    return path


def full_charx(path: Path, prefix: bytes = b"") -> Path:
    return make_charx(
        path,
        card(FULL_ASSETS),
        {
            "assets/icon/images/main.png": png(Image.open(PAINTING)),
            "assets/emotion/joy.jpg": PHOTO.read_bytes(),
            "assets/emotion/sad.png": png(Image.open(PAINTING)),
            "assets/emotion/anger.png": no_face(),
            "assets/background/hall.jpg": PHOTO.read_bytes(),
        },
        prefix,
    )


def check_wren(folder: Path) -> None:
    character = load_character(folder)
    assert character.name == "Wren Ashby"
    with Image.open(character.portrait_path() or "") as portrait:
        assert portrait.size == Image.open(PAINTING).size
    sprites = character.expressions()
    assert sorted(sprites) == ["joy", "sadness"]  # anger has no face; fear is remote
    assert sprites["joy"].name == "joy.jpg" and sprites["sadness"].name == "sadness.png"
    assert sprites["joy"].read_bytes() == PHOTO.read_bytes()
    assert (character.background_path() or Path()).name == "background.jpg"
    book = read_lorebook(character.folder)
    assert book is not None and len(book.entries) == 2


def test_the_command_line_imports_a_charx_with_sprites_and_a_lorebook(tmp_path: Path) -> None:
    charx = full_charx(tmp_path / "wren.charx")
    env = {**os.environ, "CHATTR_CHARACTERS_DIR": str(tmp_path / "chars")}
    run = subprocess.run(
        [sys.executable, "-m", "chattr", "import-card", str(charx)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr
    check_wren(tmp_path / "chars" / "wren-ashby")
    lines = run.stdout.splitlines()
    assert "expressions: joy, sadness" in lines
    assert "background: background.jpg" in lines
    assert "lorebook: 2 World Info entries in lorebook.json" in lines
    left_out = [line for line in lines if line.startswith("left out: ")]
    assert any("'fear'" in line and "never fetched" in line for line in left_out), lines
    assert any("'smug'" in line and "not one of the 28" in line for line in left_out), lines
    assert any("'anger'" in line and "no face" in line for line in left_out), lines
    assert str(tmp_path) not in run.stdout.replace(str(tmp_path / "chars"), "")


def test_the_page_upload_takes_a_charx_and_risuai_jpeg_form(tmp_path: Path) -> None:
    # RisuAI writes the zip after a JPEG; the upload is a .jpeg then.
    risu = full_charx(tmp_path / "wren.jpeg", prefix=PHOTO.read_bytes())
    character = import_upload(risu, tmp_path / "chars")
    check_wren(character.folder)
    plain = full_charx(tmp_path / "wren.charx")
    again = import_upload(plain, tmp_path / "chars", overwrite=True)
    check_wren(again.folder)


def test_assets_a_charx_cannot_use_leave_notes_and_the_portrait(tmp_path: Path) -> None:
    big = Image.new("L", (5000, 5000))
    charx = make_charx(
        tmp_path / "bad.charx",
        card(
            [
                asset("icon", "main", "embeded://assets/icon/main.png"),
                asset("emotion", "joy", "embeded://assets/emotion/joy.png"),
                asset("emotion", "sadness", "embeded://assets/emotion/huge.png"),
                asset("emotion", "surprise", "embeded://assets/emotion/missing.png"),
                asset("emotion", "fear", "data:image/png;base64,AAAA"),
            ]
        ),
        {
            "assets/icon/main.png": png(Image.open(PAINTING)),
            "assets/emotion/joy.png": b"this is not a picture",
            "assets/emotion/huge.png": png(big),
        },
    )
    notes: list[str] = []
    character = import_card(charx, tmp_path / "chars", notes=notes)
    assert character.portrait_path() is not None and character.expressions() == {}
    text = "\n".join(notes)
    assert "emotion asset 'joy' is not an image" in text
    assert "emotion asset 'sadness' is 5000 x 5000 pixels; the most is 4096 x 4096" in text
    assert "'assets/emotion/missing.png' is not in the CHARX" in text
    assert "emotion asset 'fear' is not an image" in text
    assert str(tmp_path) not in text


def symlinked(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("card.json", json.dumps(card([])))
        link = zipfile.ZipInfo("assets/icon/main.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: make_charx(p, None, {"assets/x.png": b"x"}), "no card.json at the top"),
        (lambda p: make_charx(p, card([], spec="chara_card_v2")), "spec 'chara_card_v2'"),
        (lambda p: make_charx(p, {"data": {"name": "X"}}), "is not a Character Card V3"),
        (lambda p: make_charx(p, card([]), {"../escape.png": b"x"}), "unsafe path"),
        (symlinked, "is a symbolic link"),
        (
            lambda p: make_charx(p, card([]), {f"assets/{n}.txt": b"" for n in range(600)}),
            "601 files; the limit is 500",
        ),
        (lambda p: p.write_bytes(b"not a zip") and p, "not a readable zip file"),
        (
            lambda p: make_charx(p, card([]), {"assets/bomb.bin": bytes(60_000_000)}),
            "unpacks to more than 50 MB",
        ),
    ],
    ids=["no card.json", "a V2 card", "no spec", "zip-slip", "link", "members", "no zip", "bomb"],
)
def test_bad_charx_files_are_refused_with_what_is_wrong(
    tmp_path: Path, make: Any, words: str
) -> None:
    charx = make(tmp_path / "bad.charx")
    characters = tmp_path / "chars"
    characters.mkdir()
    with pytest.raises(CardError) as caught:
        import_card(charx, characters)
    message = str(caught.value)
    assert message.startswith("bad.charx: ") and words in message, message
    assert str(tmp_path) not in message
    with pytest.raises(UploadError, match=r"bad\.charx"):
        import_upload(charx, characters)
    assert list(characters.iterdir()) == []
