"""Per-frame motion driven by the audio: mouth opening and width, blinks, slight head motion."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from visualizr.media import AUDIO_RATE

ANALYSIS_RATE = 16000
# Blinks every 2-5 s, each about a quarter second (close fast, open slower), as people do.
BLINK_INTERVAL_S = (2.0, 5.0)
BLINK_CLOSE_S = 0.08
BLINK_HOLD_S = 0.04
BLINK_OPEN_S = 0.14


@dataclass(frozen=True)
class MotionTrack:
    """Weights per video frame: `mouth_open` 0..1, `mouth_width` -1..1 (round..wide),
    `blink` 0..1, `head` (frames, 3) = x shift, y shift, roll, each about -1..1."""

    mouth_open: npt.NDArray[np.float32]
    mouth_width: npt.NDArray[np.float32]
    blink: npt.NDArray[np.float32]
    head: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.mouth_open.size)


def _smooth(
    values: npt.NDArray[np.float32], fps: int, attack_s: float, release_s: float
) -> npt.NDArray[np.float32]:
    # Lips open faster than they close; an asymmetric one-pole follower gives that shape.
    attack = 1.0 - np.exp(-1.0 / (fps * attack_s))
    release = 1.0 - np.exp(-1.0 / (fps * release_s))
    out = np.empty_like(values)
    level = 0.0
    for i, value in enumerate(values):
        rate = attack if value > level else release
        level += rate * (value - level)
        out[i] = level
    return out


def to_analysis_rate(audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """44.1 kHz audio at 16 kHz, band-limited in one FFT (what `scipy.signal.resample` does).
    NumPy's own FFT, not SciPy's filters: importing `scipy.signal` took 0.76 s of visualizr's
    start, more than the rest of its engine. The audio is zero-padded to a multiple of 441
    samples (160 out for every 441 in), of a length whose factors make a fast FFT."""
    common = math.gcd(AUDIO_RATE, ANALYSIS_RATE)
    step_in, step_out = AUDIO_RATE // common, ANALYSIS_RATE // common
    blocks = fast_length(max(1, -(-audio.size // step_in)))
    padded = blocks * step_in
    out_size = blocks * step_out
    spectrum = np.fft.rfft(audio, padded)[: out_size // 2 + 1]
    resampled = np.fft.irfft(spectrum, out_size) * (out_size / padded)
    return resampled[: -(-audio.size * step_out // step_in)].astype(np.float32)


def fast_length(n: int) -> int:
    """The smallest whole number >= n with no prime factor above 7 (a fast FFT size)."""
    while True:
        rest = n
        for prime in (2, 3, 5, 7):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return n
        n += 1


def frame_features(
    audio: npt.NDArray[np.float32], fps: int, frames: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Loudness (dBFS) and spectral centroid (Hz) per video frame, from 44.1 kHz mono audio."""
    signal = to_analysis_rate(audio)
    hop = ANALYSIS_RATE / fps
    window = int(2 * hop)
    padded = np.pad(signal, (window, window))
    centers = (np.arange(frames) + 0.5) * hop + window
    starts = np.clip((centers - window / 2).astype(np.int64), 0, padded.size - window)
    chunks = padded[starts[:, None] + np.arange(window)[None, :]] * np.hanning(window)
    rms = np.sqrt(np.mean(chunks**2, axis=1) + 1e-12)
    loudness = 20 * np.log10(rms + 1e-9)
    spectrum = np.abs(np.fft.rfft(chunks, axis=1))
    freqs = np.fft.rfftfreq(window, 1 / ANALYSIS_RATE)
    centroid = (spectrum * freqs).sum(axis=1) / (spectrum.sum(axis=1) + 1e-9)
    return loudness.astype(np.float32), centroid.astype(np.float32)


def blink_track(frames: int, fps: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """Eyelid closure per frame for blinks at natural, irregular intervals."""
    times = np.arange(frames) / fps
    closure = np.zeros(frames, np.float32)
    start = rng.uniform(0.6, 2.0)
    duration = BLINK_CLOSE_S + BLINK_HOLD_S + BLINK_OPEN_S
    end = frames / fps + 1.0
    while start < end:
        t = times - start
        shape = np.interp(
            t,
            [0, BLINK_CLOSE_S, BLINK_CLOSE_S + BLINK_HOLD_S, duration],
            [0, 1, 1, 0],
            left=0,
            right=0,
        )
        closure = np.maximum(closure, shape.astype(np.float32))
        start += rng.uniform(*BLINK_INTERVAL_S)
    return closure


def head_track(
    frames: int, fps: int, activity: npt.NDArray[np.float32], rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """Slow head sway: a few incommensurate sines per axis, livelier while speaking."""
    times = np.arange(frames) / fps
    head = np.zeros((frames, 3), np.float32)
    for axis in range(3):
        freqs = rng.uniform(0.12, 0.55, size=3)
        phases = rng.uniform(0, 2 * np.pi, size=3)
        weights = np.array([0.55, 0.3, 0.15])
        wave = weights[:, None] * np.sin(2 * np.pi * freqs[:, None] * times + phases[:, None])
        head[:, axis] = wave.sum(axis=0)
    # Idle motion is small so the mouth stays still in silence; speech adds emphasis.
    return head * (0.2 + 0.8 * activity[:, None]).astype(np.float32)


def motion_from_audio(
    audio: npt.NDArray[np.float32], fps: int, frames: int, seed: int = 0
) -> MotionTrack:
    """Turn speech audio (44.1 kHz mono float) into per-frame motion weights."""
    loudness, centroid = frame_features(audio, fps, frames)
    peak = float(np.percentile(loudness, 95))
    # Vowels sit near the clip's loud end and consonants ~10-20 dB below: a 24 dB span with a
    # curve that favours the peaks opens the mouth on syllables and closes it between them.
    floor = max(-55.0, peak - 24.0)
    opening = np.clip((loudness - floor) / (peak - floor + 1e-6), 0.0, 1.0) ** 1.5
    opening[loudness < -55.0] = 0.0
    mouth_open = _smooth(opening.astype(np.float32), fps, attack_s=0.025, release_s=0.06)
    voiced = opening > 0.15
    log_centroid = np.log(centroid + 1.0)
    if voiced.sum() >= 3:
        center = float(np.median(log_centroid[voiced]))
        spread = float(np.std(log_centroid[voiced])) + 1e-3
    else:
        center, spread = float(np.median(log_centroid)), 1.0
    width = np.tanh((log_centroid - center) / spread * 0.8) * np.clip(opening * 1.5, 0, 1)
    mouth_width = _smooth(width.astype(np.float32), fps, attack_s=0.04, release_s=0.08)
    rng = np.random.default_rng(seed)
    activity = _smooth(opening.astype(np.float32), fps, attack_s=0.3, release_s=0.8)
    return MotionTrack(
        mouth_open=mouth_open.astype(np.float32),
        mouth_width=mouth_width.astype(np.float32),
        blink=blink_track(frames, fps, rng),
        head=head_track(frames, fps, activity, rng),
    )
