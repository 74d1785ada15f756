"""Voice matching on real Piper speech: formants move by the ratio asked; pitch, length hold."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
import scipy.signal

from tests.vocalizr.support import Server, median_f0
from vocalizr.engines.piper import PiperEngine
from vocalizr.voice_match import VoiceMatcher, VoiceTraits

LINE = "Every morning the old sailor walked along the harbour and counted the boats."


def spectral_centroid_hz(samples: npt.NDArray[np.float32], sample_rate: int) -> float:
    """Centre of mass of the 200 Hz–4 kHz spectrum: it moves with the formants."""
    frequencies, power = scipy.signal.welch(samples, sample_rate, nperseg=1024)
    band = (frequencies > 200) & (frequencies < 4000)
    return float((frequencies[band] * power[band]).sum() / power[band].sum())


@pytest.fixture(scope="module")
def speech(piper_server: Server) -> tuple[npt.NDArray[np.float32], VoiceMatcher, int]:
    engine = piper_server.app.state.service.engine
    assert isinstance(engine, PiperEngine)
    raw = engine._raw(LINE, 1.0)
    assert engine._matcher is not None
    return raw, engine._matcher, engine.sample_rate


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


def test_a_voice_already_matching_is_left_alone(
    speech: tuple[npt.NDArray[np.float32], VoiceMatcher, int],
) -> None:
    samples, matcher, rate = speech
    assert matcher.apply(samples, rate, matcher.base) is samples
