"""Voice matching on real Piper speech: formants move by the ratio asked; pitch, length hold."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import scipy.signal
from parselmouth.praat import run
from piper.config import SynthesisConfig

from tests.vocalizr.support import Server, median_f0
from vocalizr.audio import Clip
from vocalizr.engines import piper as piper_engine
from vocalizr.engines.piper import CALIBRATION_TEXT, PiperEngine, base_traits_file_name
from vocalizr.settings import Settings
from vocalizr.voice_match import (
    VoiceMatcher,
    VoiceTraits,
    measure_traits,
    read_traits,
    write_traits,
)

LINE = "Every morning the old sailor walked along the harbour and counted the boats."
# Piper samples its voice and its durations from noise, and Praat's PSOLA copies unvoiced stretches
# with random offsets: with both as shipped, 30 runs moved the 0.88 centroid to 0.889-0.910 (mean
# 0.902, sd 0.006) and 1.15 to 1.135-1.156, too near ±0.04 (a CI run saw 0.92). Piper with its
# noise at zero gives the same samples bit for bit, and Praat takes a seed, so the figures below
# are one fixed measurement (0.88 → 0.882, 1.15 → 1.139 here), not a draw.
NO_NOISE = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
PRAAT_SEED = 1815


def spectral_centroid_hz(samples: npt.NDArray[np.float32], sample_rate: int) -> float:
    """Centre of mass of the 200 Hz–4 kHz spectrum: it moves with the formants."""
    frequencies, power = scipy.signal.welch(samples, sample_rate, nperseg=1024)
    band = (frequencies > 200) & (frequencies < 4000)
    return float((frequencies[band] * power[band]).sum() / power[band].sum())


def noiseless(engine: PiperEngine, text: str) -> npt.NDArray[np.float32]:
    voice = engine._require_voice()
    chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, syn_config=NO_NOISE)]
    return np.asarray(np.concatenate(chunks), dtype=np.float32)


@pytest.fixture(scope="module")
def speech(piper_server: Server) -> tuple[npt.NDArray[np.float32], VoiceMatcher, int]:
    """The line and a matcher calibrated as the engine does at load, both without noise."""
    engine = piper_server.app.state.service.engine
    assert isinstance(engine, PiperEngine)
    rate = engine.sample_rate
    base = measure_traits(Clip(noiseless(engine, CALIBRATION_TEXT), rate))
    return noiseless(engine, LINE), VoiceMatcher(base), rate


@pytest.fixture
def seeded_praat() -> Iterator[None]:
    run(f"random_initializeWithSeedUnsafelyButPredictably ({PRAAT_SEED})")
    yield
    run("random_initializeSafelyAndUnpredictably ()")


@pytest.mark.usefixtures("seeded_praat")
@pytest.mark.parametrize("scale", [0.88, 1.15])
def test_formants_move_by_the_ratio_and_pitch_and_length_hold(
    speech: tuple[npt.NDArray[np.float32], VoiceMatcher, int], scale: float
) -> None:
    samples, matcher, rate = speech
    base = matcher.base
    target = VoiceTraits(base.median_f0_hz, tuple(f * scale for f in base.formants_hz))  # type: ignore[arg-type]
    assert matcher.formant_ratio(target) == pytest.approx(scale)
    out = matcher.apply(samples, rate, target)
    shift = spectral_centroid_hz(out, rate) / spectral_centroid_hz(samples, rate)
    assert shift == pytest.approx(scale, abs=0.04)
    assert median_f0(out, rate) == pytest.approx(target.median_f0_hz, rel=0.08)
    assert out.size == pytest.approx(samples.size, rel=0.01)


def test_the_same_line_and_seed_give_the_same_speech(
    piper_server: Server, speech: tuple[npt.NDArray[np.float32], VoiceMatcher, int]
) -> None:
    """What makes the figures above fixed: no noise is left in the test's speech."""
    engine = piper_server.app.state.service.engine
    assert isinstance(engine, PiperEngine)
    samples, matcher, rate = speech
    assert np.array_equal(noiseless(engine, LINE), samples)
    target = VoiceTraits(matcher.base.median_f0_hz * 1.2, matcher.base.formants_hz)
    runs = []
    for _ in range(2):
        run(f"random_initializeWithSeedUnsafelyButPredictably ({PRAAT_SEED})")
        runs.append(matcher.apply(samples, rate, target))
    run("random_initializeSafelyAndUnpredictably ()")
    assert np.array_equal(runs[0], runs[1])


def test_a_voice_already_matching_is_left_alone(
    speech: tuple[npt.NDArray[np.float32], VoiceMatcher, int],
) -> None:
    samples, matcher, rate = speech
    assert matcher.apply(samples, rate, matcher.base) is samples


def test_the_voices_own_traits_are_measured_once_then_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Measuring the plain voice takes a synthesis and its analysis (0.6 s of a cold start):
    the first start keeps the figures in the data folder's cache, later starts read them, and
    a broken file is measured again."""
    monkeypatch.setattr(piper_engine, "PREPARED_DIR", tmp_path / "not prepared")
    settings = Settings(data_dir=tmp_path / "data")
    first = PiperEngine(settings)
    first.load()
    kept = tmp_path / "data" / "cache" / "piper" / base_traits_file_name(first.model_path)
    assert read_traits(kept) == first.base_traits
    planted = VoiceTraits(123.0, (510.0, 1490.0, 2470.0))  # no measurement gives these
    write_traits(kept, planted)
    later = PiperEngine(settings)
    later.load()
    assert later.base_traits == planted
    kept.write_text('{"version": 1, "median_f0_hz": "high"}')
    broken = PiperEngine(settings)
    broken.load()
    assert broken.base_traits != planted and read_traits(kept) == broken.base_traits
    assert "ignoring a broken voice cache file" in caplog.text


def test_the_traits_set_up_prepared_come_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    monkeypatch.setattr(piper_engine, "PREPARED_DIR", prepared)
    engine = PiperEngine(Settings(data_dir=tmp_path / "empty data"))
    planted = VoiceTraits(140.0, (520.0, 1480.0, 2460.0))
    write_traits(prepared / base_traits_file_name(engine.model_path), planted)
    engine.load()
    assert engine.base_traits == planted
    assert not (tmp_path / "empty data" / "cache" / "piper").exists()  # nothing measured
