"""Voice activity on the real speech asset padded with silence (and a little noise)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from chattr.voice.vad import UtteranceDetector, VadOptions, detect_speech

SPEECH = Path(__file__).resolve().parents[4] / "shared" / "assets" / "speech_en_16k.wav"
# The asset is speech edge to edge (8 s, loud within 30 ms of both ends), so with this much
# silence around it the truth is known: speech from BEFORE_S to BEFORE_S + 8.
BEFORE_S, AFTER_S = 1.5, 2.0
TOLERANCE_S = 0.1


def padded(rate: int = 16_000) -> tuple[npt.NDArray[np.float32], int, float]:
    samples, source_rate = sf.read(SPEECH, dtype="float32", always_2d=True)
    speech = samples.mean(axis=1)
    assert source_rate == 16_000
    if rate != source_rate:
        positions = np.arange(round(speech.size * rate / source_rate)) * (source_rate / rate)
        speech = np.interp(positions, np.arange(speech.size), speech).astype(np.float32)
    noise = np.random.default_rng(3).normal(0, 0.002, int((BEFORE_S + AFTER_S) * rate))
    before, after = noise[: int(BEFORE_S * rate)], noise[int(BEFORE_S * rate) :]
    audio = np.concatenate([before, speech, after]).astype(np.float32)
    return audio, rate, speech.size / rate


@pytest.mark.parametrize("rate", [16_000, 48_000])
def test_finds_where_the_speech_starts_and_ends(rate: int) -> None:
    audio, rate, duration = padded(rate)
    utterances = detect_speech(audio, rate)
    assert utterances, "no speech found"
    assert utterances[0][0] == pytest.approx(BEFORE_S, abs=TOLERANCE_S)
    assert utterances[-1][1] == pytest.approx(BEFORE_S + duration, abs=TOLERANCE_S)
    assert len(utterances) <= 4  # pauses between phrases, not every syllable


def test_streamed_in_small_chunks_the_end_comes_after_the_pause() -> None:
    audio, rate, duration = padded()
    options = VadOptions(min_silence_s=0.4)
    detector = UtteranceDetector(rate, options)
    chunk = 1600  # 100 ms, as a browser sends it
    ends: list[tuple[float, float]] = []  # (where speech ended, how much audio had been fed)
    starts: list[tuple[float, float]] = []
    for offset in range(0, audio.size, chunk):
        for event in detector.feed(audio[offset : offset + chunk]):
            fed_s = (offset + chunk) / rate
            (starts if event.kind == "start" else ends).append((event.at_s, fed_s))
    assert starts[0][0] == pytest.approx(BEFORE_S, abs=TOLERANCE_S)
    last_end, known_at = ends[-1]
    assert last_end == pytest.approx(BEFORE_S + duration, abs=TOLERANCE_S)
    # The end is known once the pause has lasted min_silence_s (plus at most one chunk).
    assert options.min_silence_s <= known_at - last_end <= options.min_silence_s + 0.1 + 0.04
    assert not detector.speaking


def test_silence_and_quiet_noise_are_not_speech() -> None:
    rate = 16_000
    assert detect_speech(np.zeros(rate * 3, np.float32), rate) == []
    noise = np.random.default_rng(5).normal(0, 0.003, rate * 3).astype(np.float32)
    assert detect_speech(noise, rate) == []


def test_scoring_keeps_up_with_live_audio() -> None:
    audio, rate, _ = padded()
    detector = UtteranceDetector(rate)
    started = time.perf_counter()
    detector.feed(audio)
    elapsed = time.perf_counter() - started
    windows = audio.size // detector.window
    # 32 ms of audio per window; even on a loaded shared machine scoring is far faster.
    assert elapsed / windows < detector.window_s / 4, f"{elapsed / windows * 1000:.2f} ms/window"
