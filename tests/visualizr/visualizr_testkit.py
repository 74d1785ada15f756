"""Helpers for visualizr's tests: real media from ../shared/assets, live servers."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf
from PIL import Image

from tests.serving import free_port, serve_in_thread
from visualizr.api import create_app
from visualizr.settings import Settings

ASSETS = Path(__file__).resolve().parents[2].parent / "shared" / "assets"
SPEECH = ASSETS / "speech_en_16k.wav"
PHOTO = ASSETS / "portrait_photo_bw.jpg"
PAINTING = ASSETS / "portrait_painting.jpg"
SILENCE_S = 1.5
SPEECH_S = 3.0


# The test audio host stands in for vocalizr: its address is the one the fetch allow-list names.
AUDIO_HOST_PORT = free_port()


def wav_bytes(samples: npt.NDArray[np.float32], rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def speech_mono(rate: int = 16000) -> npt.NDArray[np.float32]:
    audio, source_rate = sf.read(SPEECH, dtype="float32", always_2d=True)
    mono = np.asarray(audio.mean(axis=1), np.float32)
    if rate != source_rate:
        from scipy.signal import resample_poly

        mono = resample_poly(mono, rate, source_rate).astype(np.float32)
    return mono


def speech_between_silences(rate: int = 22050) -> bytes:
    """1.5 s silence, 3 s of real speech, 1.5 s silence: a 16-bit mono WAV like vocalizr's."""
    speech = speech_mono(rate)[: int(SPEECH_S * rate)]
    gap = np.zeros(int(SILENCE_S * rate), np.float32)
    return wav_bytes(np.concatenate([gap, speech, gap]), rate)


def image_bytes(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def drawing_without_face() -> Image.Image:
    """A flat cartoon a face detector can't read: a yellow disc with dot eyes and a line mouth."""
    import cv2

    canvas = np.full((400, 400, 3), 235, np.uint8)
    cv2.circle(canvas, (200, 200), 120, (40, 200, 240), -1)
    cv2.circle(canvas, (160, 170), 10, (20, 20, 20), -1)
    cv2.circle(canvas, (240, 170), 10, (20, 20, 20), -1)
    cv2.line(canvas, (160, 250), (240, 250), (30, 30, 120), 6)
    return Image.fromarray(canvas[:, :, ::-1])


@dataclass
class AudioHost:
    """A static file server on 127.0.0.1 (an allowed host) for `audio_url` tests."""

    folder: Path
    url: str

    def publish(self, name: str, data: bytes) -> str:
        (self.folder / name).write_bytes(data)
        return f"{self.url}/{name}"


@contextlib.contextmanager
def running_server(settings: Settings, *, timeout_s: float = 120.0) -> Iterator[str]:
    """Run create_app(settings) under uvicorn in a thread; yield its URL once /healthz says ok."""
    app = create_app(settings)
    with serve_in_thread(
        app, settings.host, settings.port, name="visualizr", ready_timeout_s=timeout_s
    ) as url:
        yield url


def make_settings(tmp: Path, characters: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": free_port(),
        "data_dir": tmp / "data",
        "characters_dir": characters,
        "ui": False,
        "max_audio_s": 20.0,
        "max_image_pixels": 6_000_000,
        "default_size": 256,
        "vocalizr_url": f"http://127.0.0.1:{AUDIO_HOST_PORT}",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]
