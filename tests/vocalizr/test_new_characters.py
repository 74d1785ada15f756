"""Voices of character folders added after start-up, and the engine's own `default` voice."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import parselmouth
import pytest
import soundfile as sf
from parselmouth.praat import call

from tests.vocalizr.support import (
    HIGH_PITCH_FACTOR,
    SPEECH,
    Server,
    median_f0,
    read_mono,
    serve,
)
from vocalizr.engines.piper import PiperEngine
from vocalizr.settings import Settings

LINE = "I have walked these streets for many years, and I know every corner of them."


@pytest.fixture(scope="module")
def late_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Starts with one character; the tests add the others while the service runs."""
    root = tmp_path_factory.mktemp("late-characters")
    (root / "ada").mkdir()
    shutil.copyfile(SPEECH, root / "ada" / "voice.wav")
    return root


@pytest.fixture(scope="module")
def late_server(late_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = Settings(
        engine="piper",
        characters_dir=late_dir,
        data_dir=tmp_path_factory.mktemp("vocalizr-late"),
        ui=False,
    )
    with serve(settings) as server:
        yield server


@pytest.fixture(scope="module")
def high_voice() -> tuple[npt.NDArray[np.float32], int, float]:
    """The shared speech with its pitch raised well above Piper's own voice: samples, rate, F0."""
    samples, rate = read_mono(SPEECH)
    sound = parselmouth.Sound(samples.astype(np.float64), sampling_frequency=rate)
    target = median_f0(samples, rate) * HIGH_PITCH_FACTOR
    raised = np.asarray(call(sound, "Change gender", 75, 600, 1.0, target, 1, 1).values[0])
    return raised, rate, median_f0(raised, rate)


def speak(server: Server, voice: str) -> httpx.Response:
    with server.client() as http:
        return http.post("/v1/speech", json={"text": LINE, "voice": voice})


def spoken_f0(server: Server, answer: httpx.Response) -> float:
    assert answer.status_code == 200, answer.text
    audio = httpx.get(answer.json()["url"]).content
    samples, rate = sf.read(io.BytesIO(audio), dtype="float32")
    return median_f0(samples, rate)


def voices(server: Server) -> dict[str, dict[str, object]]:
    with server.client() as http:
        listed = http.get("/v1/voices").json()["voices"]
    return {voice["voice"]: voice for voice in listed}


def test_character_added_after_start_speaks_in_its_voice(
    late_server: Server, late_dir: Path, high_voice: tuple[npt.NDArray[np.float32], int, float]
) -> None:
    before = speak(late_server, "cleo")
    assert before.status_code == 404, before.text
    assert before.json()["error"] == "unknown_voice"

    samples, rate, reference_f0 = high_voice
    folder = late_dir / "cleo"
    folder.mkdir()
    sf.write(folder / "voice.wav", samples, rate, subtype="PCM_16")
    (folder / "character.yaml").write_text("name: Cleo\n")

    engine = late_server.app.state.service.engine
    assert isinstance(engine, PiperEngine)
    measured = engine.traits_cache.measurements
    cleo_f0 = spoken_f0(late_server, speak(late_server, "cleo"))
    assert cleo_f0 == pytest.approx(reference_f0, rel=0.15)
    spoken_f0(late_server, speak(late_server, "cleo"))
    assert engine.traits_cache.measurements == measured + 1  # measured on first use only

    listed = voices(late_server)["cleo"]
    assert (listed["name"], listed["source"]) == ("Cleo", "character")


def test_default_voice_is_piper_unmatched(
    late_server: Server, high_voice: tuple[npt.NDArray[np.float32], int, float]
) -> None:
    listed = voices(late_server)
    assert listed["default"]["source"] == "builtin"
    assert next(iter(listed)) == "default"
    default_f0 = spoken_f0(late_server, speak(late_server, "default"))
    # Joe's own pitch, well below the raised reference that a matched voice would take on.
    _, _, reference_f0 = high_voice
    assert default_f0 < 0.8 * reference_f0
    with late_server.client() as http:
        streamed = http.post("/v1/speech/stream", json={"text": LINE, "voice": "default"})
    assert streamed.status_code == 200
    assert len(streamed.content) > 44 + 22050  # header and over half a second of PCM16


def test_folder_without_clip_stays_unknown_until_it_has_one(
    late_server: Server, late_dir: Path
) -> None:
    folder = late_dir / "dora"
    folder.mkdir()
    (folder / "character.yaml").write_text("name: Dora\n")
    assert speak(late_server, "dora").status_code == 404
    shutil.copyfile(SPEECH, folder / "voice.wav")
    assert speak(late_server, "dora").status_code == 200


def test_unusable_clip_in_a_new_folder_is_a_404_that_says_why(
    late_server: Server, late_dir: Path
) -> None:
    folder = late_dir / "mute"
    folder.mkdir()
    sf.write(folder / "voice.wav", np.zeros(16000 * 5, dtype=np.float32), 16000)
    answer = speak(late_server, "mute")
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"] == "unknown_voice"
    assert "voice.wav" in answer.json()["detail"]


@pytest.mark.parametrize(
    "voice", ["../outside", "..", "ada/../outside", "/tmp", "outside/", ".hidden", "a" * 65]
)
def test_path_like_ids_never_reach_the_filesystem(
    late_server: Server, late_dir: Path, voice: str
) -> None:
    # A usable voice just outside the characters folder: a path escape would find it.
    for folder in (late_dir.parent / "outside", late_dir / ".hidden"):
        folder.mkdir(exist_ok=True)
        shutil.copyfile(SPEECH, folder / "voice.wav")
    answer = speak(late_server, voice)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"] == "unknown_voice"
    assert not {"outside", ".hidden"} & set(voices(late_server))
