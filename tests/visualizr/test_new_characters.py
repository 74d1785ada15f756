"""Characters whose folders appear after start-up (chattr imports them) are found on first use."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from visualizr.geometry import FaceLocator
from visualizr.portraits import portrait_from_bytes

from .visualizr_testkit import (
    PHOTO,
    drawing_without_face,
    make_settings,
    running_server,
    speech_mono,
    wav_bytes,
)

SHIPPED = Path(__file__).resolve().parents[2] / "characters"


@pytest.fixture(scope="module")
def late_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A characters folder that starts with one character; the tests add the others."""
    root = tmp_path_factory.mktemp("late-characters")
    (root / "einstein").mkdir()
    (root / "einstein" / "portrait.jpg").write_bytes(PHOTO.read_bytes())
    return root


@pytest.fixture(scope="module")
def late_server(tmp_path_factory: pytest.TempPathFactory, late_dir: Path) -> Iterator[str]:
    settings = make_settings(tmp_path_factory.mktemp("visualizr-late"), late_dir)
    with running_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
def second_of_speech() -> bytes:
    return wav_bytes(speech_mono(16000)[:16000], 16000)


def video_of(url: str, character: str, audio: bytes) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/videos",
        files={"audio": ("a.wav", audio, "audio/wav")},
        data={"character": character, "size": "128"},
        timeout=120,
    )


def characters(url: str) -> list[str]:
    return list(httpx.get(f"{url}/v1/characters").json()["characters"])


def test_character_added_after_start_is_rendered(
    late_server: str, late_dir: Path, second_of_speech: bytes
) -> None:
    before = video_of(late_server, "curie", second_of_speech)
    assert before.status_code == 404, before.text
    assert before.json()["error"] == "unknown_character"

    folder = late_dir / "curie"
    folder.mkdir()
    (folder / "portrait.jpg").write_bytes(PHOTO.read_bytes())
    (folder / "character.yaml").write_text("name: Marie Curie\n")

    response = video_of(late_server, "curie", second_of_speech)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["size"] == 128 and result["frames"] > 0
    video = httpx.get(result["url"], timeout=30)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert {"curie", "einstein"} <= set(characters(late_server))


def test_late_character_geometry_comes_from_its_yaml(
    late_server: str, late_dir: Path, second_of_speech: bytes
) -> None:
    # The same faceless drawing twice: only the folder that declares where the face is renders.
    # (Different files: geometry is cached by the image's bytes.)
    for name, declared, file in (
        ("doodle", True, "portrait.png"),
        ("bare-doodle", False, "portrait.webp"),
    ):
        folder = late_dir / name
        folder.mkdir()
        drawing_without_face().save(folder / file)
        card = f"name: {name}\n"
        if declared:
            card += "portrait:\n  face_box: [80, 80, 240, 240]\n  mouth_box: [150, 235, 100, 30]\n"
        (folder / "character.yaml").write_text(card)

    declared_response = video_of(late_server, "doodle", second_of_speech)
    assert declared_response.status_code == 200, declared_response.text
    bare = video_of(late_server, "bare-doodle", second_of_speech)
    assert bare.status_code == 422, bare.text
    assert bare.json()["error"] == "no_face"


def test_folder_without_portrait_stays_unknown_until_it_has_one(
    late_server: str, late_dir: Path, second_of_speech: bytes
) -> None:
    folder = late_dir / "halfway"
    folder.mkdir()
    (folder / "character.yaml").write_text("name: Halfway\n")
    missing = video_of(late_server, "halfway", second_of_speech)
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"] == "unknown_character"
    assert "portrait" in missing.json()["detail"]

    (folder / "portrait.jpg").write_bytes(PHOTO.read_bytes())
    assert video_of(late_server, "halfway", second_of_speech).status_code == 200


@pytest.mark.parametrize(
    "character",
    ["../outside", "..", "einstein/../outside", "/etc", "outside/", ".hidden", "a" * 65],
)
def test_path_like_ids_never_reach_the_filesystem(
    late_server: str, late_dir: Path, second_of_speech: bytes, character: str
) -> None:
    # A valid character just outside the characters folder: a path escape would find it.
    outside = late_dir.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "portrait.jpg").write_bytes(PHOTO.read_bytes())
    hidden = late_dir / ".hidden"
    hidden.mkdir(exist_ok=True)
    (hidden / "portrait.jpg").write_bytes(PHOTO.read_bytes())

    response = video_of(late_server, character, second_of_speech)
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "unknown_character"
    assert "outside" not in characters(late_server)


def test_same_picture_with_other_declared_geometry_gets_its_own(tmp_path: Path) -> None:
    """Two characters sharing one drawing but declaring different boxes: neither gets the
    other's cached geometry (the cache key covers the boxes, not just the image bytes)."""
    buffer = io.BytesIO()
    drawing_without_face().save(buffer, format="PNG")
    data = buffer.getvalue()
    locator = FaceLocator(tmp_path / "cache")
    chins = []
    for face_box in ((80.0, 80.0, 240.0, 240.0), (40.0, 40.0, 160.0, 160.0)):
        portrait = portrait_from_bytes(data, max_pixels=10_000_000, face_box=face_box)
        geometry = locator.locate(portrait.image, portrait.key, face_box=portrait.face_box)
        chins.append(tuple(float(v) for v in geometry.chin))
    locator.close()
    assert chins[0] == (200.0, 320.0)  # the middle of the box's bottom edge
    assert chins[1] == (120.0, 200.0)


def test_faces_prepared_at_set_up_are_read_and_mediapipe_is_not_started(tmp_path: Path) -> None:
    """`visualizr.prepare_faces` (set-up) finds each shipped portrait's face once; a locator
    given that folder reads it there, starts no face model, and writes no cache. A portrait
    of other bytes is located as ever."""
    import subprocess
    import sys

    from visualizr.geometry import FaceLocator
    from visualizr.portraits import CharacterPortraits

    prepared = tmp_path / "prepared"
    subprocess.run(
        [sys.executable, "-m", "visualizr.prepare_faces", str(SHIPPED), "--into", str(prepared)],
        check=True,
        capture_output=True,
    )
    portraits = CharacterPortraits(SHIPPED, max_pixels=50_000_000)
    portraits.discover()
    assert sorted(p.name for p in prepared.iterdir()) == sorted(
        f"{portraits.get(c).key}.face.json" for c in portraits.ids()
    )
    locator = FaceLocator(tmp_path / "cache", prepared)
    napoleon = portraits.get("napoleon")
    found = locator.locate(napoleon.image, napoleon.key)
    assert locator._mesh is None and not (tmp_path / "cache").exists()
    detected = FaceLocator().locate(napoleon.image, napoleon.key)
    assert found.to_json() == detected.to_json()  # what detection gives, to the digit
    mirrored = np.ascontiguousarray(napoleon.image[:, ::-1])
    other = locator.locate(mirrored, "a mirrored napoleon")
    assert locator._mesh is not None
    assert (tmp_path / "cache" / "a mirrored napoleon.face.json").exists()
    assert other.to_json() != found.to_json()


def test_preparing_the_faces_again_leaves_only_the_current_portraits(tmp_path: Path) -> None:
    import subprocess
    import sys

    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "an-earlier-portrait.face.json").write_text("{}")
    command = [sys.executable, "-m", "visualizr.prepare_faces", str(SHIPPED), "--into"]
    subprocess.run([*command, str(prepared)], check=True, capture_output=True)
    assert len(list(prepared.iterdir())) == 2  # napoleon's and einstein's
    assert not (prepared / "an-earlier-portrait.face.json").exists()
