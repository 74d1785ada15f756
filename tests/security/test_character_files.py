"""Attacks on the files a character folder names: paths out of the folder, symlinks out, and
fetching character files through the page's file route (only portraits may be served)."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from chattr.characters.character_set import CharacterError, load_character, load_characters
from chattr.characters.uploads import UploadError, import_upload

from ..browsers import chromium, chromium_args
from ..conftest import CHARACTERS, StartApp

YAML = "name: Grace Hopper\ndescription: Computer pioneer.\ngreeting: Hello, sailor.\n"
ENVIRON = "/proc/self/environ"
OUTSIDE = [ENVIRON, "/etc/passwd", "../../x", "../hopper-other/portrait.png", "C:\\Windows\\x.ini"]
SECRET = "GROQ_API_KEY"


def character(tmp_path: Path, extra: str = "", character_id: str = "hopper") -> Path:
    folder = tmp_path / character_id
    folder.mkdir(parents=True)
    (folder / "character.yaml").write_text(YAML + extra)
    return folder


def assert_no_server_path(message: str, *folders: Path) -> None:
    for folder in folders:
        assert str(folder) not in message, message


@pytest.mark.parametrize("target", OUTSIDE)
@pytest.mark.parametrize(
    ("field", "yaml_key"),
    [
        ("portrait.file", "portrait:\n  file: '{}'\n"),
        ("voice.reference", "voice:\n  reference: '{}'\n"),
    ],
)
def test_a_path_out_of_the_folder_is_refused_at_load_naming_the_field(
    tmp_path: Path, target: str, field: str, yaml_key: str
) -> None:
    folder = character(tmp_path, yaml_key.format(target))
    with pytest.raises(CharacterError) as caught:
        load_character(folder)
    assert caught.value.field == field
    assert f"field '{field}'" in str(caught.value)
    assert "inside the character's folder" in str(caught.value)
    assert_no_server_path(str(caught.value), tmp_path)
    # ... and a broken folder never stops the rest: it is listed as an error.
    found = load_characters(tmp_path)
    assert "hopper" not in found and len(found.errors) == 1


@pytest.mark.parametrize(
    ("name", "field"), [("portrait.png", "portrait.file"), ("voice.wav", "voice.reference")]
)
@pytest.mark.parametrize("target", [ENVIRON, "/etc/passwd", "../outside.png"])
def test_a_symlink_out_of_the_folder_is_refused_at_load(
    tmp_path: Path, name: str, field: str, target: str
) -> None:
    folder = character(tmp_path)
    (tmp_path / "outside.png").write_bytes(b"not the character's")
    (folder / name).symlink_to(target)
    with pytest.raises(CharacterError) as caught:
        load_character(folder)
    assert caught.value.field == field
    assert_no_server_path(str(caught.value), tmp_path)


def test_a_symlink_inside_the_folder_is_fine(tmp_path: Path) -> None:
    folder = character(tmp_path, "portrait:\n  file: link.png\n")
    (folder / "pictures").mkdir()
    (folder / "pictures" / "me.png").write_bytes(b"png")
    (folder / "link.png").symlink_to("pictures/me.png")
    loaded = load_character(folder)
    assert loaded.portrait_path() == (folder / "pictures" / "me.png").resolve()


def test_paths_are_checked_again_when_used(tmp_path: Path) -> None:
    folder = character(tmp_path)
    (folder / "portrait.png").write_bytes(b"png")
    (folder / "voice.wav").write_bytes(b"wav")
    loaded = load_character(folder)
    assert loaded.portrait_path() is not None and loaded.voice_path() is not None
    # Swapped for links out after loading (a later edit, a race): no longer used.
    for name, target in (("portrait.png", ENVIRON), ("voice.wav", "/etc/passwd")):
        (folder / name).unlink()
        (folder / name).symlink_to(target)
    assert loaded.portrait_path() is None
    assert loaded.voice_path() is None


def test_knowledge_links_out_of_the_folder_are_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = character(tmp_path)
    knowledge = folder / "knowledge"
    knowledge.mkdir()
    (knowledge / "navy.md").write_text("She joined the Navy Reserve in 1943.")
    (knowledge / "passwd.md").symlink_to("/etc/passwd")
    (knowledge / "environ.txt").symlink_to(ENVIRON)
    (tmp_path / "secret.md").write_text("a file beside the characters")
    (knowledge / "beside.md").symlink_to("../../secret.md")
    (knowledge / "etc").symlink_to("/etc")  # a linked folder: nothing under it is read
    with caplog.at_level(logging.WARNING, logger="chattr.characters.character_set"):
        documents = load_character(folder).knowledge_documents()
    assert documents == {"knowledge/navy.md": "She joined the Navy Reserve in 1943."}
    assert "knowledge/passwd.md" in caplog.text and "knowledge/beside.md" in caplog.text


def test_a_knowledge_folder_that_is_a_link_out_is_not_read(tmp_path: Path) -> None:
    folder = character(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "private.md").write_text("not this character's")
    (folder / "knowledge").symlink_to(outside)
    assert load_character(folder).knowledge_documents() == {}


def make_zip(
    path: Path, files: dict[str, str | bytes], links: dict[str, str] | None = None
) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


@pytest.mark.parametrize("target", [ENVIRON, "/etc/passwd", "../../x"])
def test_a_zipped_folder_naming_a_file_outside_is_never_installed(
    tmp_path: Path, target: str
) -> None:
    characters = tmp_path / "characters"
    characters.mkdir()
    upload = make_zip(
        tmp_path / "upload.zip",
        {"hopper/character.yaml": YAML + f"portrait:\n  file: '{target}'\n"},
    )
    with pytest.raises(UploadError) as caught:
        import_upload(upload, characters)
    assert "portrait.file" in str(caught.value)
    assert_no_server_path(str(caught.value), tmp_path)
    assert list(characters.iterdir()) == []


def test_a_zip_carrying_a_symlink_is_refused(tmp_path: Path) -> None:
    characters = tmp_path / "characters"
    characters.mkdir()
    upload = make_zip(
        tmp_path / "upload.zip",
        {"hopper/character.yaml": YAML},
        links={"hopper/portrait.png": ENVIRON},
    )
    with pytest.raises(UploadError, match="symbolic link"):
        import_upload(upload, characters)
    assert list(characters.iterdir()) == []


@pytest.mark.slow
def test_an_imported_card_folder_holds_only_its_own_plain_files(tmp_path: Path) -> None:
    # A card cannot name paths at all; whatever it says, the folder chattr writes stays inside.
    card = tmp_path / "card.json"
    data = {"name": "Ada", "first_mes": "Hi.", "extensions": {"portrait": {"file": ENVIRON}}}
    card.write_text(json.dumps({"spec": "chara_card_v2", "data": {**data, "portrait": ENVIRON}}))
    env = {**os.environ, "CHATTR_CHARACTERS_DIR": str(tmp_path / "chars")}
    run = subprocess.run(
        [sys.executable, "-m", "chattr", "import-card", str(card)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    folder = tmp_path / "chars" / "ada"
    files = [p for p in folder.rglob("*")]
    assert files and all(not p.is_symlink() for p in files)
    loaded = load_character(folder)
    assert loaded.portrait.file == "portrait.png" and loaded.portrait_path() is None


# --- the page serves portraits only --------------------------------------------------------


def gallery_urls(app_url: str) -> list[str]:
    config = httpx.get(f"{app_url}/config", timeout=30).json()
    gallery = next(
        c for c in config["components"] if c.get("props", {}).get("elem_id") == "chattr-gallery"
    )
    return [item["image"]["url"] for item in gallery["props"]["value"]]


def fetch_file(app_url: str, path: Path | str) -> httpx.Response:
    return httpx.get(f"{app_url}/gradio_api/file={path}", timeout=30)


def test_the_page_serves_portraits_and_no_other_character_file(
    start_app: StartApp, characters_dir: Path
) -> None:
    app = start_app()
    urls = gallery_urls(app.url)
    assert len(urls) >= 2  # napoleon and einstein
    for url in urls:
        response = httpx.get(url, timeout=30)
        assert response.status_code == 200
        assert response.content.startswith(b"\x89PNG")
    shipped = (CHARACTERS / "napoleon" / "portrait.png").read_bytes()
    assert any(httpx.get(url, timeout=30).content == shipped for url in urls)

    folder = characters_dir.resolve() / "napoleon"
    for name in ("character.yaml", "voice.wav", "knowledge/biography.md", "portrait.png"):
        assert (folder / name).is_file()
        for path in (
            folder / name,
            f"characters/napoleon/{name}",
            f"../characters/napoleon/{name}",
        ):
            response = fetch_file(app.url, path)
            assert response.status_code in (403, 404), (path, response.status_code)
            assert b"Napoleon" not in response.content
    # Nor anything else on the server.
    for path in (ENVIRON, "/etc/passwd"):
        response = fetch_file(app.url, path)
        assert response.status_code in (403, 404)
        assert SECRET.encode() not in response.content and b"root:" not in response.content


@pytest.mark.browser
def test_page_imports_refuse_a_folder_pointing_out_and_show_a_good_one_in_the_gallery(
    start_app: StartApp, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    app = start_app()
    portrait = (CHARACTERS / "einstein" / "portrait.png").read_bytes()
    evil = make_zip(
        tmp_path / "evil.zip",
        {"evil/character.yaml": YAML + f"portrait:\n  file: {ENVIRON}\n"},
    )
    good = make_zip(
        tmp_path / "hopper.zip",
        {"hopper/character.yaml": YAML, "hopper/portrait.png": portrait},
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True, args=chromium_args())
        try:
            page = browser.new_page()
            page.goto(app.url, wait_until="load")
            gallery = page.locator("#chattr-gallery img")
            gallery.first.wait_for(timeout=30_000)
            before = gallery.count()
            upload = page.locator("#chattr-import input[type=file]")

            upload.set_input_files(str(evil))
            page.get_by_text("Import failed").first.wait_for(timeout=30_000)
            assert page.get_by_text("portrait.file").count() >= 1
            assert "evil" not in app.service.characters.characters
            assert SECRET not in page.content()

            page.reload(wait_until="load")
            page.locator("#chattr-import input[type=file]").set_input_files(str(good))
            page.get_by_text("Imported").first.wait_for(timeout=30_000)
            page.wait_for_function(
                f"() => document.querySelectorAll('#chattr-gallery img').length > {before}"
            )
            sources = [
                page.locator("#chattr-gallery img").nth(i).get_attribute("src")
                for i in range(page.locator("#chattr-gallery img").count())
            ]
        finally:
            browser.close()
    shown = [httpx.get(src, timeout=30).content for src in sources if src]
    assert portrait in shown  # the imported character's portrait, served without a restart
