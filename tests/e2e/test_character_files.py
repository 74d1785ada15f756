"""A character whose voice and portrait are not the default file names, through the whole stack.

chattr, vocalizr and visualizr read the folder by one contract (chatacter_common), so the clip
`voice.reference` names is the voice vocalizr clones and the image `portrait.file` names is the
face visualizr animates: the reply has speech and video, and no errors.
"""

from __future__ import annotations

import io
import shutil
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from PIL import Image

from chattr.media.local_stack import LocalService, LocalStack
from chattr.testing.fake_llm import FakeLLMServer

from ..conftest import StartApp
from .conftest import auth

pytestmark = pytest.mark.slow

CHARACTER_YAML = """\
name: Ada Lovelace
description: Mathematician who wrote the first published computer program.
greeting: Good day. Shall we talk of engines?
voice:
  reference: clip.wav
portrait:
  file: face.png
"""
REPLY = "The Analytical Engine weaves algebraic patterns. It is like a loom for numbers."


@pytest.fixture(scope="module")
def odd_characters(assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One character, `ada`, whose clip is clip.wav and whose portrait is face.png."""
    root = tmp_path_factory.mktemp("odd-names") / "characters"
    folder = root / "ada"
    folder.mkdir(parents=True)
    shutil.copyfile(assets / "speech_en_16k.wav", folder / "clip.wav")
    Image.open(assets / "portrait_photo_bw.jpg").convert("RGB").save(folder / "face.png")
    (folder / "character.yaml").write_text(CHARACTER_YAML)
    return root


@pytest.fixture(scope="module")
def odd_stack(
    odd_characters: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """vocalizr and visualizr on that characters folder, started as chattr starts them."""
    stack = LocalStack(characters_dir=odd_characters, data_dir=tmp_path_factory.mktemp("media"))
    try:
        assert stack.wait_ready(180), "media services did not start"
        assert not stack.status_lines(), stack.status_lines()
        yield stack
    finally:
        stack.stop()


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as reader:
        return float(reader.getnframes() / reader.getframerate())


def video_frames(data: bytes) -> int:
    with av.open(io.BytesIO(data), mode="r") as container:
        return sum(1 for _ in container.decode(video=0))


def listed(service: LocalService, path: str, key: str) -> Any:
    """One list from a service's guarded JSON answer."""
    answer = httpx.get(f"{service.url}{path}", headers=auth(service), timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()[key]


def test_a_character_with_its_own_file_names_speaks_and_moves(
    start_app: StartApp, llm: FakeLLMServer, odd_characters: Path, odd_stack: LocalStack
) -> None:
    vocalizr, visualizr = odd_stack.vocalizr, odd_stack.visualizr
    assert vocalizr is not None and visualizr is not None
    assert not (odd_characters / "ada" / "voice.wav").exists()
    assert not (odd_characters / "ada" / "portrait.png").exists()
    app = start_app(
        vocalizr.url,
        visualizr.url,
        characters_dir=odd_characters,
        vocalizr_api_key=vocalizr.api_key,
        visualizr_api_key=visualizr.api_key,
    )
    llm.script(REPLY)
    result = app.client().predict("Tell me about the engine.", "ada", "", True, api_name="/chat")

    assert result["text"] == REPLY
    assert result["errors"] == []
    segments = result["segments"]
    assert len(segments) == 2
    for segment in segments:
        audio = httpx.get(segment["audio_url"], timeout=30)
        assert audio.status_code == 200 and wav_seconds(audio.content) > 0.5
        video = httpx.get(segment["video_url"], timeout=30)
        assert video.status_code == 200 and video_frames(video.content) > 0
    assert result["audio_url"] and result["video_url"]

    # Spoken in ada's own cloned voice (clip.wav), animated from ada's own face (face.png).
    voices = {voice["voice"]: voice for voice in listed(vocalizr, "/v1/voices", "voices")}
    assert voices["ada"]["source"] == "character"
    assert voices["ada"]["name"] == "Ada Lovelace"
    assert "ada" in listed(visualizr, "/v1/characters", "characters")
