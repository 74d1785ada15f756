"""Helpers for vocalizr tests and fixtures: the shared assets, pitch measurement, a real server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import parselmouth
import soundfile as sf
import uvicorn
from fastapi import FastAPI

from vocalizr.api import create_app
from vocalizr.settings import Settings

ASSETS = Path(__file__).resolve().parents[2].parent / "shared" / "assets"
SPEECH = ASSETS / "speech_en_16k.wav"
# The second reference: the same speaker, pitch raised by this factor with Praat.
HIGH_PITCH_FACTOR = 1.6


def median_f0(samples: np.ndarray, sample_rate: int) -> float:
    """Median pitch of voiced frames, measured independently of vocalizr's own code."""
    sound = parselmouth.Sound(samples.astype(np.float64), sampling_frequency=sample_rate)
    frequencies = sound.to_pitch(pitch_floor=60, pitch_ceiling=500).selected_array["frequency"]
    return float(np.median(frequencies[frequencies > 0]))


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    return samples.mean(axis=1), int(rate)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout_s
    try:
        while True:
            try:
                health = httpx.get(f"{url}/healthz", timeout=5)
                if health.status_code == 200:
                    break
                if health.json().get("status") == "error":
                    raise RuntimeError(health.text)
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("vocalizr did not become ready")
            time.sleep(0.1)
        yield Server(url, app, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
