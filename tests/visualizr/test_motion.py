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
