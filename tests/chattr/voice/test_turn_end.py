"""The end of a spoken turn by meaning: Smart Turn v3.2 on recordings made here from the speech
asset, streamed in 100 ms chunks as the browser sends them.

The asset says "The holidays are a time of celebrating with loved ones, enjoying the festivities
and muddling through Wisconsin's coat. But for many this year has been..." — a finished sentence
up to 5.86 s (its last sound ends at 5.82 s), then one cut off mid-phrase.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from chattr.settings import Settings
from chattr.voice.live import Listening, LiveConversation
from chattr.voice.turn_end import (
    SmartTurn,
    TurnModelMissing,
    default_model_path,
    load_turn_model,
    log_mel_features,
)
from chattr.voice.utterances import TurnOptions, Utterance

RATE = 16_000
SENTENCE_END_S = 5.86  # "... Wisconsin's coat."
AFTER_AND_S = 4.68  # "... enjoying the festivities and | muddling through ..."
CHUNK = RATE // 10


@pytest.fixture(scope="module")
def speech(assets: Path) -> npt.NDArray[np.float32]:
    samples, rate = sf.read(assets / "speech_en_16k.wav", dtype="float32", always_2d=True)
    assert rate == RATE
    return np.asarray(samples.mean(axis=1), dtype=np.float32)


@pytest.fixture(scope="module")
def model() -> SmartTurn:
    if not default_model_path().is_file():
        pytest.fail(f"{default_model_path()} is missing: run `make setup`")
    return load_turn_model()


def quiet(seconds: float, seed: int = 3) -> npt.NDArray[np.float32]:
    """Silence with a faint noise floor (-54 dBFS), as a real microphone gives."""
    noise = np.random.default_rng(seed).normal(0, 0.002, int(seconds * RATE))
    return noise.astype(np.float32)


def turns(
    audio: npt.NDArray[np.float32], model: SmartTurn | None, turn: TurnOptions | None = None
) -> list[Utterance]:
    live = LiveConversation(turn_model=model, turn=turn)
    heard: list[Utterance] = []
    for offset in range(0, audio.size, CHUNK):
        live.hear(RATE, audio[offset : offset + CHUNK])
        while (utterance := live.next_utterance()) is not None:
            heard.append(utterance)
    live.flush()
    while (utterance := live.next_utterance()) is not None:
        heard.append(utterance)
    return heard


def test_the_features_are_whispers() -> None:
    from transformers import WhisperFeatureExtractor

    # Always 8 s: Smart Turn pads in front itself (transformers normalises before padding).
    audio = np.random.default_rng(0).normal(0, 0.1, 8 * RATE).astype(np.float32)
    extractor = WhisperFeatureExtractor(chunk_length=8)
    expected = extractor(
        audio,
        sampling_rate=RATE,
        padding="max_length",
        max_length=8 * RATE,
        truncation=True,
        do_normalize=True,
        return_tensors="np",
    ).input_features[0]
    features = log_mel_features(audio)
    assert features.shape == (80, 800)
    assert np.abs(features - expected).max() < 1e-4


test_the_features_are_whispers = pytest.mark.slow(test_the_features_are_whispers)  # transformers


def test_a_mid_sentence_pause_of_0_9_s_does_not_end_the_turn(
    speech: npt.NDArray[np.float32], model: SmartTurn
) -> None:
    cut, end = int(AFTER_AND_S * RATE), int(SENTENCE_END_S * RATE)
    audio = np.concatenate([quiet(0.5), speech[:cut], quiet(0.9, 4), speech[cut:end], quiet(2.5)])
    heard = turns(audio, model)
    assert len(heard) == 1, [(u.started_s, u.ended_s, u.ended_by) for u in heard]
    (turn,) = heard
    assert turn.ended_by == "meaning"
    assert turn.started_s < 0.7 and turn.ended_s > 0.5 + AFTER_AND_S + 0.9 + 0.8
    # Without the model the pause would have cut the sentence in two.
    assert len(turns(audio, None)) == 2


def test_a_finished_sentence_ends_the_turn_within_0_3_s_of_silence(
    speech: npt.NDArray[np.float32], model: SmartTurn
) -> None:
    audio = np.concatenate([quiet(0.5), speech[: int(SENTENCE_END_S * RATE)], quiet(2.5)])
    (turn,) = turns(audio, model)
    assert turn.ended_by == "meaning" and turn.complete is not None and turn.complete > 0.5
    # Silence heard after voice activity's end of speech before the turn was over.
    assert turn.decided_s - turn.ended_s <= 0.3, (turn.ended_s, turn.decided_s)
    # Voice activity's end trails the last sound (5.82 s into the speech) by under 0.25 s.
    assert 0.5 + 5.82 <= turn.ended_s <= 0.5 + 5.82 + 0.25


def test_two_questions_apart_are_two_turns(
    speech: npt.NDArray[np.float32], model: SmartTurn
) -> None:
    sentence = speech[: int(SENTENCE_END_S * RATE)]
    audio = np.concatenate([quiet(0.5), sentence, quiet(1.2, 5), sentence, quiet(1.0, 6)])
    heard = turns(audio, model)
    assert [u.ended_by for u in heard] == ["meaning", "meaning"]
    assert heard[0].ended_s < 0.5 + SENTENCE_END_S + 0.3 < heard[1].started_s


def test_an_unfinished_turn_ends_at_the_fallback_pause(
    speech: npt.NDArray[np.float32], model: SmartTurn
) -> None:
    # "... But for many this year has been ..." and then silence.
    audio = np.concatenate([quiet(0.5), speech, quiet(3.0)])
    options = TurnOptions(fallback_s=1.2)
    (turn,) = turns(audio, model, options)
    assert turn.ended_by == "fallback" and turn.complete is not None and turn.complete < 0.5
    assert 1.2 <= turn.decided_s - turn.ended_s <= 1.2 + 0.15
    longer = turns(audio, model, replace(options, fallback_s=2.0))
    assert longer[0].decided_s - longer[0].ended_s >= 2.0


@pytest.mark.parametrize("kind", ["silence", "noise", "clipped", "cut mid-word"])
def test_bad_input_is_no_turn_or_one_turn(
    speech: npt.NDArray[np.float32], model: SmartTurn, kind: str
) -> None:
    rng = np.random.default_rng(11)
    if kind == "silence":
        audio, expected = np.zeros(3 * RATE, np.float32), {0}
    elif kind == "noise":
        audio, expected = rng.normal(0, 0.05, 3 * RATE).astype(np.float32), {0}
    elif kind == "clipped":
        loud = np.clip(speech[: int(SENTENCE_END_S * RATE)] * 12, -1, 1)
        audio, expected = np.concatenate([quiet(0.5), loud, quiet(1.5)]), {1}
    else:  # the microphone stops in the middle of "festivities"
        audio, expected = np.concatenate([quiet(0.5), speech[: int(3.9 * RATE)]]), {1}
    heard = turns(audio.astype(np.float32), model)
    assert len(heard) in expected
    for turn in heard:
        assert turn.samples.size > 0 and np.isfinite(turn.samples).all()


def test_a_missing_model_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(TurnModelMissing, match="make setup"):
        load_turn_model(tmp_path / "nothing.onnx")
    # Live mode still listens, ending turns on a pause alone.
    listening = Listening(turn_model=tmp_path / "nothing.onnx")
    assert listening.model() is None
    assert listening.conversation().detector.turn_model is None


def test_the_settings_choose_how_turns_end(tmp_path: Path) -> None:
    listening = Listening.from_settings(
        Settings(turn_pause_s=0.2, turn_fallback_s=3.0, barge_in_words=3)
    )
    assert listening.turn == TurnOptions(pause_s=0.2, fallback_s=3.0)
    assert listening.turn_model == default_model_path()
    assert listening.conversation().barge_in_words == 3
    assert Listening.from_settings(Settings(turn_model="off")).turn_model is None
    with pytest.raises(ValueError, match="CHATTR_TURN_MODEL"):
        Settings(turn_model=str(tmp_path / "missing.onnx"))
