"""The speech-to-text engine registry and service, without HTTP: real faster-whisper (Moonshine's
own tests are in test_moonshine.py)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests.vocalizr.support import SPEECH
from vocalizr.errors import EngineNotReady
from vocalizr.jobs import JobQueue
from vocalizr.moonshine import MoonshineEngine
from vocalizr.settings import Settings
from vocalizr.transcription import (
    STT_ENGINES,
    FasterWhisperEngine,
    TranscriptionService,
    bundled_model_dir,
    create_transcriber,
)

WHISPER = Settings(stt_engine="faster-whisper")


def test_the_bundled_model_is_a_ctranslate2_whisper_folder() -> None:
    folder = bundled_model_dir()
    assert {"model.bin", "config.json", "tokenizer.json"} <= {p.name for p in folder.iterdir()}


def test_registry_names_the_engines() -> None:
    assert list(STT_ENGINES) == ["faster-whisper", "moonshine", "none"]
    # The default: Moonshine, whose model `make setup` copies (test_moonshine.py checks that).
    assert isinstance(create_transcriber(Settings()), MoonshineEngine)
    whisper = create_transcriber(Settings(stt_engine="faster-whisper"))
    assert isinstance(whisper, FasterWhisperEngine)
    assert create_transcriber(Settings(stt_engine="none")) is None
    with pytest.raises(ValueError, match="known: faster-whisper, moonshine, none"):
        create_transcriber(Settings(stt_engine="whisper-cpp"))


def test_loads_once_and_transcribes_in_the_characters_language() -> None:
    service = TranscriptionService(create_transcriber(WHISPER), JobQueue(4, 1), 60.0)
    engine = service.ensure_loaded()
    assert service.ensure_loaded() is engine and service.ready
    assert engine.languages() == ("en",)  # tiny.en
    transcript = anyio.run(service.transcribe, SPEECH.read_bytes(), "en")
    assert "holidays" in transcript.text.lower()
    assert transcript.language == "en"
    assert transcript.duration_s == pytest.approx(8.0, abs=0.05)
    assert 0 < transcript.transcription_s < 30


def test_a_model_that_does_not_load_is_a_clear_503(tmp_path: Path) -> None:
    missing = tmp_path / "empty-model"
    missing.mkdir()  # a folder, so nothing tries a download
    settings = WHISPER.model_copy(update={"stt_model": str(missing)})
    service = TranscriptionService(create_transcriber(settings), JobQueue(4, 1), 60.0)
    with pytest.raises(EngineNotReady) as caught:
        anyio.run(service.transcribe, SPEECH.read_bytes())
    assert "failed to load" in caught.value.detail
    assert "VOCALIZR_STT_MODEL" in caught.value.detail
    assert str(tmp_path) not in caught.value.detail
    with pytest.raises(EngineNotReady):  # the failure is kept, not retried per request
        service.ensure_loaded()


def test_turned_off_says_how_to_turn_it_on() -> None:
    service = TranscriptionService(None, JobQueue(4, 1), 60.0)
    with pytest.raises(EngineNotReady, match="VOCALIZR_STT_ENGINE"):
        anyio.run(service.transcribe, SPEECH.read_bytes())
