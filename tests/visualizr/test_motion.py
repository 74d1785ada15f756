"""Audio-driven motion: the mouth follows speech energy, closes in silence; blinks happen."""

from __future__ import annotations

import numpy as np

from visualizr.media import AUDIO_RATE
from visualizr.motion import motion_from_audio

from .visualizr_testkit import speech_mono


def test_mouth_follows_speech_and_rests_in_silence() -> None:
    speech = speech_mono(AUDIO_RATE)[: 3 * AUDIO_RATE]
    gap = np.zeros(2 * AUDIO_RATE, np.float32)
    audio = np.concatenate([gap, speech, gap])
    fps = 25
    track = motion_from_audio(audio, fps, frames=7 * fps)
    assert len(track) == 7 * fps
    silent = np.r_[track.mouth_open[5:45], track.mouth_open[-40:]]
    talking = track.mouth_open[55:120]
    assert silent.max() < 0.02
    assert talking.max() > 0.8
    assert 0.15 < talking.mean() < 0.8  # it also closes between syllables
    assert np.all(np.abs(track.mouth_width) <= 1.0)
    assert np.abs(track.mouth_width[5:45]).max() < 0.02


def test_blinks_and_head_motion_are_bounded_and_natural() -> None:
    fps = 30
    audio = (np.random.default_rng(1).standard_normal(20 * AUDIO_RATE) * 0.05).astype(np.float32)
    track = motion_from_audio(audio, fps, frames=20 * fps)
    closed = track.blink > 0.9
    starts = np.flatnonzero(np.diff(closed.astype(int)) == 1)
    assert 3 <= len(starts) <= 10  # every 2-5 s over 20 s
    assert np.abs(track.head).max() <= 1.0
    # smooth: no jumps between frames
    assert np.abs(np.diff(track.head, axis=0)).max() < 0.1


def test_the_analysis_rate_matches_scipys_polyphase_resampling() -> None:
    """motion.py resamples with one FFT, not scipy.signal (an import that cost 0.76 s of
    visualizr's start): the features it reads from speech stay what they were."""
    from scipy.signal import resample_poly

    from visualizr.motion import ANALYSIS_RATE, to_analysis_rate

    speech = speech_mono(AUDIO_RATE)
    for size in (speech.size, 3 * AUDIO_RATE + 17, 999):  # lengths of any factors
        ours = to_analysis_rate(speech[:size])
        scipys = resample_poly(speech[:size], ANALYSIS_RATE, AUDIO_RATE)
        assert ours.dtype == np.float32 and ours.size == scipys.size
        error = np.sqrt(np.mean((ours - scipys) ** 2) / np.mean(scipys**2))
        assert error < 0.05  # measured: 0.4-2.7% (the edges of the shortest clip)


def test_visualizr_starts_without_scipy() -> None:
    import subprocess
    import sys

    code = "import sys, visualizr.api, visualizr.engines.warp; print('scipy' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"
