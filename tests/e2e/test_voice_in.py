"""Speech in through the `chat` API: a recording (gradio_client's handle_file) in place of a
message, transcribed by a real vocalizr process, answered by a real chattr."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf
from gradio_client import handle_file

from chattr.media.local_stack import LocalService
from chattr.testing.fake_llm import FakeLLMServer

from ..conftest import ASSETS, StartApp
from .conftest import start_service

SPEECH = ASSETS / "speech_en_16k.wav"


@pytest.fixture(scope="module")
def vocalizr(
    characters_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalService]:
    service = start_service("vocalizr", characters_dir, tmp_path_factory.mktemp("voice"), ui="0")
    yield service
    service.stop()


def ask(app_url: str, **arguments: Any) -> dict[str, Any]:
    from gradio_client import Client

    result = Client(app_url, verbose=False).predict(api_name="/chat", **arguments)
    assert isinstance(result, dict)
    return result


def test_a_recording_is_the_message(
    start_app: StartApp, llm: FakeLLMServer, vocalizr: LocalService
) -> None:
    app = start_app(vocalizr.url, vocalizr_api_key=vocalizr.api_key)
    llm.script("Festive greetings to you too.")
    result = ask(app.url, audio=handle_file(str(SPEECH)), character="einstein", media=False)
    transcript = result["transcript"].lower()
    assert "holidays" in transcript and "festivities" in transcript, transcript
    assert result["text"] == "Festive greetings to you too."
    assert result["errors"] == []
    # The model was asked the transcript, as the person's message.
    last_user = [m for m in llm.requests[-1]["messages"] if m["role"] == "user"][-1]
    assert "holidays" in str(last_user["content"]).lower()


def test_a_typed_turn_has_no_transcript(
    start_app: StartApp, llm: FakeLLMServer, vocalizr: LocalService
) -> None:
    app = start_app(vocalizr.url, vocalizr_api_key=vocalizr.api_key)
    llm.script("Hello.")
    result = ask(app.url, message="Hi there", character="einstein", media=False)
    assert "transcript" not in result
    assert result["text"] == "Hello."


def write_wav(path: Path, samples: npt.NDArray[np.float32], rate: int) -> str:
    sf.write(path, samples, rate, subtype="PCM_16")
    return str(path)


def test_bad_recordings_get_clear_errors(
    start_app: StartApp, llm: FakeLLMServer, vocalizr: LocalService, tmp_path: Path
) -> None:
    app = start_app(vocalizr.url, vocalizr_api_key=vocalizr.api_key)
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("these are my notes, not a recording")
    silence = write_wav(tmp_path / "silence.wav", np.zeros(16_000 * 3, np.float32), 16_000)
    too_long = write_wav(tmp_path / "long.wav", np.zeros(8_000 * 130, np.float32), 8_000)
    cases = [
        (str(not_audio), "does not decode"),
        (silence, "silent"),
        (too_long, "the limit is 120 s"),
    ]
    for path, expected in cases:
        with pytest.raises(Exception, match=expected) as caught:
            ask(app.url, audio=handle_file(path), character="einstein", media=False)
        assert str(tmp_path) not in str(caught.value)  # no server paths in the message
    with pytest.raises(Exception, match="not both"):
        ask(app.url, message="Hi", audio=handle_file(str(SPEECH)), character="einstein")
    assert llm.requests == []  # nothing reached the model


def test_without_vocalizr_speech_in_says_what_to_set(start_app: StartApp) -> None:
    app = start_app()
    with pytest.raises(Exception, match="CHATTR_VOCALIZR_URL"):
        ask(app.url, audio=handle_file(str(SPEECH)), character="einstein")
