"""Helpers for vocalizr tests and fixtures: the shared assets, pitch measurement, a real server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import parselmouth
import soundfile as sf
from fastapi import FastAPI

from tests.serving import free_port, serve_in_thread
from vocalizr.api import create_app
from vocalizr.settings import Settings

ASSETS = Path(__file__).resolve().parents[2].parent / "shared" / "assets"
SPEECH = ASSETS / "speech_en_16k.wav"
# The second reference: the same speaker, pitch raised by this factor with Praat.
HIGH_PITCH_FACTOR = 1.6


def median_f0(samples: npt.NDArray[np.float32], sample_rate: int) -> float:
    """Median pitch of voiced frames, measured independently of vocalizr's own code."""
    sound = parselmouth.Sound(samples.astype(np.float64), sampling_frequency=sample_rate)
    frequencies = sound.to_pitch(pitch_floor=60, pitch_ceiling=500).selected_array["frequency"]
    return float(np.median(frequencies[frequencies > 0]))


def read_mono(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    return np.asarray(samples.mean(axis=1), np.float32), int(rate)


@dataclass
class Server:
    """A running vocalizr: its base URL, app and settings."""

    url: str
    app: FastAPI
    settings: Settings

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)


@contextmanager
def serve(settings: Settings, ready_timeout_s: float = 120.0) -> Iterator[Server]:
    """Run the real app with uvicorn in a thread until the engine reports ready."""
    port = free_port()
    settings = settings.model_copy(update={"host": "127.0.0.1", "port": port})
    app = create_app(settings)
    with serve_in_thread(
        app, "127.0.0.1", port, name="vocalizr", ready_timeout_s=ready_timeout_s
    ) as url:
        yield Server(url, app, settings)
