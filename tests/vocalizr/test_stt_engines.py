"""Each speech-to-text engine through vocalizr's real route, `POST /v1/audio/transcriptions`:
a vocalizr per engine (piper for speech), asked as chattr and OpenAI's client ask."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf
import soxr

from tests.vocalizr.support import SPEECH, Server, read_mono, serve
from vocalizr.settings import Settings

ENGINES = ("moonshine", "faster-whisper")
# What speech_en_16k.wav says (8 s): "The holidays are a time of celebrating with loved ones,
# enjoying the festivities ..."
EXPECTED_WORDS = ("holidays", "celebrating", "loved ones", "festivities")
RATE = 16_000


@pytest.fixture(scope="module", params=ENGINES)
def server(
    request: pytest.FixtureRequest, characters_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    settings = Settings(
        engine="piper",
        stt_engine=request.param,
        characters_dir=characters_dir,
        data_dir=tmp_path_factory.mktemp(f"vocalizr-{request.param}"),
        ui=False,
    )
    with serve(settings) as running:
        # The engine asked for, not a stand-in (moonshine falls back without its model).
        assert running.app.state.transcription.engine.name == request.param
        yield running


def wav(samples: npt.NDArray[np.float32], rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def transcribe(server: Server, audio: bytes, **form: str) -> dict[str, object]:
    with server.client() as http:
        answer = http.post(
            "/v1/audio/transcriptions", files={"file": ("clip.wav", audio)}, data=form
        )
    body = answer.json()
    assert isinstance(body, dict)
    body["status"] = answer.status_code
    return body


def test_hears_the_speech_asset_as_chattr_asks(server: Server) -> None:
    answer = transcribe(server, SPEECH.read_bytes(), language="en", response_format="json")
    assert answer["status"] == 200, answer
    text = str(answer["text"]).lower()
    for word in EXPECTED_WORDS:
        assert word in text, text


def test_verbose_json_times_its_segments(server: Server) -> None:
    # At 44.1 kHz: the service resamples to 16 kHz before the engine hears it.
    samples, rate = read_mono(SPEECH)
    resampled = soxr.resample(samples, rate, 44_100).astype(np.float32)
    answer = transcribe(server, wav(resampled, 44_100), response_format="verbose_json")
    assert answer["status"] == 200, answer
    assert answer["language"] == "en"
    assert answer["duration"] == pytest.approx(8.0, abs=0.05)
    segments = answer["segments"]
    assert isinstance(segments, list) and segments
    assert all(0 <= s["start"] < s["end"] <= 8.05 for s in segments), segments
    assert "festivities" in " ".join(s["text"] for s in segments).lower()


def test_silence_and_noise_are_no_speech(server: Server) -> None:
    rng = np.random.default_rng(7)
    quiet, loud = (rng.normal(0, level, RATE * 4).astype(np.float32) for level in (0.003, 0.05))
    for audio in (np.zeros(RATE * 3, np.float32), quiet, loud):
        answer = transcribe(server, wav(audio))
        assert answer["status"] == 422, answer
        assert answer["error"]["code"] == "no_speech"  # type: ignore[index]


def test_another_language_says_what_to_set(server: Server) -> None:
    answer = transcribe(server, SPEECH.read_bytes(), language="fr")
    assert answer["status"] == 422, answer
    message = answer["error"]["message"]  # type: ignore[index]
    assert "English-only" in message and "VOCALIZR_STT_MODEL" in message
    if server.settings.stt_engine == "moonshine":
        assert "VOCALIZR_STT_ENGINE=faster-whisper" in message
