"""The Moonshine speech-to-text engine without HTTP: the real tiny-en that `make setup` copies
out of the moonshine-voice wheel, on the shared speech asset."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import numpy as np
import numpy.typing as npt
import pytest

from tests.vocalizr.support import SPEECH, read_mono
from vocalizr.errors import EngineNotReady, UnsupportedLanguage
from vocalizr.jobs import JobQueue
from vocalizr.moonshine import (
    MODEL_FILES,
    MoonshineEngine,
    Vocabulary,
    default_model_dir,
    speech_spans,
)
from vocalizr.settings import Settings
from vocalizr.transcription import (
    WHISPER_RATE,
    FasterWhisperEngine,
    TranscriptionService,
    create_transcriber,
)

RATE = WHISPER_RATE


@pytest.fixture(scope="module")
def engine() -> MoonshineEngine:
    missing = [name for name in MODEL_FILES if not (default_model_dir() / name).is_file()]
    if missing:
        pytest.fail(f"{default_model_dir()} lacks {missing}: run `make setup`")
    built = create_transcriber(Settings(stt_engine="moonshine"))
    assert isinstance(built, MoonshineEngine)
    built.load()
    return built


@pytest.fixture(scope="module")
def speech() -> npt.NDArray[np.float32]:
    samples, rate = read_mono(SPEECH)
    assert rate == RATE
    return samples


def quiet(seconds: float, seed: int = 3) -> npt.NDArray[np.float32]:
    """A pause with a faint microphone noise floor (-54 dBFS)."""
    return np.random.default_rng(seed).normal(0, 0.002, int(seconds * RATE)).astype(np.float32)


def test_set_up_copies_the_model_and_its_mit_licence() -> None:
    folder = default_model_dir()
    assert {*MODEL_FILES, "LICENSE"} <= {path.name for path in folder.iterdir()}
    assert (folder / "LICENSE").read_text().startswith("MIT License")


def test_the_vocabulary_reads_moonshines_tokenizer_file(tmp_path: Path) -> None:
    vocabulary = Vocabulary.read(default_model_dir() / "tokenizer.bin")
    assert len(vocabulary.pieces) == 32_768
    assert (vocabulary.start_id, vocabulary.end_id) == (1, 2)
    assert vocabulary.pieces[3 + 0x41] == b"A"  # ids 3-258 are the bytes

    # A file of our own: the specials, the 256 bytes, then two pieces.
    pieces = [b"<unk>", b"<s>", b"</s>", *(bytes([value]) for value in range(256))]
    pieces += ["\u2581caf".encode(), b"<<ST_0>>"]
    (tmp_path / "tokenizer.bin").write_bytes(b"".join(bytes([len(p)]) + p for p in pieces))
    own = Vocabulary.read(tmp_path / "tokenizer.bin")
    cafe = [own.start_id, 259, 3 + 0xC3, 3 + 0xA9, 260, own.end_id]  # "é" split in two bytes
    assert own.decode(cafe) == "café"

    (tmp_path / "cut.bin").write_bytes(b"\x05<unk>\x03<s")  # a piece runs past the end
    with pytest.raises(ValueError, match="not a Moonshine tokenizer"):
        Vocabulary.read(tmp_path / "cut.bin")


def test_transcribes_the_speech_asset_in_one_timed_segment(
    engine: MoonshineEngine, speech: npt.NDArray[np.float32]
) -> None:
    transcript = engine.transcribe(speech, "en", None, 0.0)
    text = transcript.text.lower()
    for word in ("holidays", "celebrating", "loved ones", "festivities"):
        assert word in text, text
    assert transcript.language == "en"
    assert transcript.duration_s == pytest.approx(8.0)
    (segment,) = transcript.segments
    assert 0 <= segment.start_s < 0.5 and 7.5 < segment.end_s <= 8.0
    assert segment.text == transcript.text


def test_speech_apart_is_two_segments_in_order(
    engine: MoonshineEngine, speech: npt.NDArray[np.float32]
) -> None:
    first_sentence = speech[: int(5.86 * RATE)]  # "... muddling through Wisconsin's coat."
    recording = np.concatenate([quiet(1.0), first_sentence, quiet(3.0, seed=4), speech])
    transcript = engine.transcribe(recording, "en", None, 0.0, timestamps=False)
    first, second = transcript.segments
    # The sentence is at 1.0-6.86 s, the whole clip at 9.86-17.86 s; the VAD pads each by up to
    # 0.4 s and a segment never reaches the middle of the pause between them (8.36 s).
    assert 0.5 < first.start_s < 1.1 and 6.8 < first.end_s < 8.36, first
    assert 8.36 < second.start_s < 9.9 and 17.8 < second.end_s <= 17.86, second
    assert "holidays" in first.text.lower() and "for many" not in first.text.lower()
    assert "holidays" in second.text.lower() and "for many" in second.text.lower()


def test_silence_and_noise_reach_no_decoder(engine: MoonshineEngine) -> None:
    noise = np.random.default_rng(5).normal(0, 0.05, 3 * RATE).astype(np.float32)
    for recording in (np.zeros(2 * RATE, np.float32), quiet(3.0), noise):
        assert speech_spans(recording) == []
        assert engine.transcribe(recording, "en", None, 0.0).text == ""


def test_a_looping_decoder_stops_at_the_length_budget(
    engine: MoonshineEngine, speech: npt.NDArray[np.float32]
) -> None:
    # Half a second cut mid-word sends tiny-en round in a loop (one piece again and again):
    # it stops at 6.5 tokens a second plus 10, here 14. The whole clip ends on its own.
    looping = engine.generate(speech[int(0.1 * RATE) : int(0.6 * RATE)])
    assert len(looping) == 14
    assert len(set(looping)) < 7
    whole = engine.generate(speech)
    assert 20 < len(whole) < 62  # 8 s: a budget of 62


def test_english_only_says_which_engine_to_set(engine: MoonshineEngine) -> None:
    service = TranscriptionService(engine, JobQueue(4, 1), 60.0)
    with pytest.raises(UnsupportedLanguage, match="VOCALIZR_STT_ENGINE=faster-whisper"):
        anyio.run(service.transcribe, SPEECH.read_bytes(), "fr")


def test_without_the_set_up_copy_whisper_hears_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An environment that only installed requirements.lock: no share/vocalizr/ in its prefix.
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert isinstance(create_transcriber(Settings(stt_engine="moonshine")), FasterWhisperEngine)


def test_a_folder_without_the_model_is_a_clear_503(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.bin").write_bytes(b"")
    settings = Settings(stt_engine="moonshine", stt_model=str(tmp_path))
    service = TranscriptionService(create_transcriber(settings), JobQueue(4, 1), 60.0)
    with pytest.raises(EngineNotReady) as caught:
        anyio.run(service.transcribe, SPEECH.read_bytes())
    assert "moonshine" in caught.value.detail and "MoonshineModelMissing" in caught.value.detail
    assert str(tmp_path) not in caught.value.detail
