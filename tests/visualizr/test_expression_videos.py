"""`expression` over HTTP: sprites stand in for the portrait, bad labels and sprites are told."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from .test_videos import fetch_video, post_json
from .visualizr_testkit import PAINTING, PHOTO, AudioHost, make_settings, running_server


@pytest.fixture(scope="module")
def sprite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """einstein (the black-and-white photo) with a colour joy sprite (the painting) and a
    sadness "sprite" that is not an image."""
    root = tmp_path_factory.mktemp("sprite_characters")
    folder = root / "einstein"
    (folder / "expressions").mkdir(parents=True)
    (folder / "portrait.jpg").write_bytes(PHOTO.read_bytes())
    Image.open(PAINTING).save(folder / "expressions" / "joy.webp")
    (folder / "expressions" / "sadness.png").write_bytes(b"not an image at all")
    settings = make_settings(tmp_path_factory.mktemp("visualizr_sprites"), root)
    with running_server(settings) as url:
        yield url


def colourfulness(frame: npt.NDArray[np.uint8]) -> float:
    """Mean spread between a pixel's channels: 0 for a black-and-white picture."""
    channels = frame.astype(np.float32)
    return float((channels.max(axis=2) - channels.min(axis=2)).mean())


def test_a_sprite_replaces_the_portrait_and_a_bad_one_falls_back(
    sprite_server: str, audio_host: AudioHost, spoken_wav: bytes
) -> None:
    audio_url = audio_host.publish("expression.wav", spoken_wav)
    videos = {}
    for label in ("joy", "sadness", None):
        body: dict[str, object] = {"audio_url": audio_url, "portrait": "einstein"}
        if label:
            body["expression"] = label
        response = post_json(sprite_server, body)
        assert response.status_code == 200, response.text
        videos[label] = fetch_video(response.json())
    # The joy sprite is the colour painting; sadness's sprite does not decode, so the photo
    # (black and white) shows sadness, as it does with no expression at all.
    assert colourfulness(videos["joy"].frames[10]) > 20
    assert colourfulness(videos["sadness"].frames[10]) < 5
    assert colourfulness(videos[None].frames[10]) < 5
    middle = len(videos[None].frames) // 2
    sad, plain = videos["sadness"].frames[middle], videos[None].frames[middle]
    assert np.abs(sad.astype(np.int16) - plain).max() > 40  # the rendered expression shows


@pytest.mark.parametrize("field", ["expression", "previous_expression"])
def test_an_unknown_label_is_refused_with_the_known_ones(
    sprite_server: str, audio_host: AudioHost, spoken_wav: bytes, field: str
) -> None:
    audio_url = audio_host.publish("unknown.wav", spoken_wav)
    body: dict[str, object] = {"audio_url": audio_url, "portrait": "einstein", field: "joyful"}
    response = post_json(sprite_server, body)
    assert response.status_code == 422
    answer = response.json()
    assert answer["error"] == "unknown_expression"
    assert field in answer["detail"] and "'joyful'" in answer["detail"]
    assert "joy, love" in answer["detail"] and "surprise" in answer["detail"]


def test_multipart_takes_the_expression_too(sprite_server: str, spoken_wav: bytes) -> None:
    response = httpx.post(
        f"{sprite_server}/v1/videos",
        files={"audio": ("a.wav", spoken_wav, "audio/wav")},
        data={"character": "einstein", "expression": "Joy", "previous_expression": "sadness"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert colourfulness(fetch_video(response.json()).frames[10]) > 20


def test_the_folder_contract_finds_sprites(tmp_path: Path) -> None:
    from chatacter_common.character_folder import load_character_media

    folder = tmp_path / "ada"
    (folder / "expressions").mkdir(parents=True)
    (folder / "expressions" / "joy.png").write_bytes(b"x")
    (folder / "expressions" / "happy.png").write_bytes(b"x")  # not a label: not a sprite
    (folder / "expressions" / "sadness.gif").write_bytes(b"x")  # not a sprite format
    (folder / "background.jpg").write_bytes(b"x")
    (folder / "voice").mkdir()
    (folder / "voice" / "grief.wav").write_bytes(b"x")
    (tmp_path / "outside.png").write_bytes(b"x")
    (folder / "expressions" / "anger.png").symlink_to(tmp_path / "outside.png")
    media = load_character_media(folder)
    assert media.expressions() == {"joy": (folder / "expressions" / "joy.png").resolve()}
    assert media.expression_path("../outside") is None
    assert media.background_path() == (folder / "background.jpg").resolve()
    assert list(media.emotion_voices()) == ["grief"]
