"""vocalizr fixtures: a characters folder made from the shared assets, servers on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import parselmouth
import pytest
import soundfile as sf
from parselmouth.praat import call

from tests.vocalizr.support import (
    ASSETS,
    HIGH_PITCH_FACTOR,
    SPEECH,
    Server,
    median_f0,
    read_mono,
    serve,
)
from vocalizr.settings import Settings


@pytest.fixture(scope="session")
def characters_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two characters of clearly different pitch, and two broken folders that must be skipped."""
    assert SPEECH.is_file(), f"test assets missing: {ASSETS}"
    root = tmp_path_factory.mktemp("characters")
    samples, rate = read_mono(SPEECH)

    low = root / "ada"
    low.mkdir()
    sf.write(low / "voice.wav", samples, rate, subtype="PCM_16")
    (low / "character.yaml").write_text("name: Ada\nlanguage: en\n")

    high = root / "bea"
    high.mkdir()
    sound = parselmouth.Sound(samples.astype(np.float64), sampling_frequency=rate)
    raised = call(
        sound, "Change gender", 75, 600, 1.0, median_f0(samples, rate) * HIGH_PITCH_FACTOR, 1, 1
    )
    sf.write(high / "voice.wav", raised.values[0], rate, subtype="PCM_16")

    broken = root / "broken"
    broken.mkdir()
    (broken / "voice.wav").write_bytes(b"this is not audio")

    silent = root / "silent"
    silent.mkdir()
    sf.write(silent / "voice.wav", np.zeros(rate * 5, dtype=np.float32), rate)
    return root


@pytest.fixture(scope="session")
def piper_server(
    characters_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The default service: piper engine, Gradio tab mounted."""
    settings = Settings(
        engine="piper",
        characters_dir=characters_dir,
        data_dir=tmp_path_factory.mktemp("vocalizr-data"),
        ui=True,
    )
    with serve(settings) as server:
        yield server


@pytest.fixture
def client(piper_server: Server) -> Iterator[httpx.Client]:
    with piper_server.client() as http:
        yield http
