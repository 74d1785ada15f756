"""Whether a spoken turn is complete, from what was said and how: Smart Turn v3.2.

Smart Turn (Daily, BSD-2-Clause) is a Whisper-tiny encoder with a classifier, 8 M parameters,
int8, that reads the last 8 s of speech as Whisper's log-mel features and answers the chance the
speaker has finished. Its CPU model ships inside the `pipecat-ai` wheel; `make setup` copies the
.onnx (and its licence) into the virtual environment, and it runs here on ONNX Runtime, without
pipecat. The features are computed with numpy below.
"""

from __future__ import annotations

import logging
import sys
import threading
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

RATE = 16_000
WINDOW_S = 8  # the model hears the last 8 s, zeros in front of a shorter turn
FFT_SIZE = 400  # 25 ms
HOP = 160  # 10 ms: 800 frames in 8 s
MEL_BANDS = 80
MODEL_FILE = "smart-turn-v3.2-cpu.onnx"


def default_model_path() -> Path:
    """Where `make setup` puts the model: inside the virtual environment."""
    return Path(sys.prefix) / "share" / "chattr" / "smart-turn" / MODEL_FILE


def _slaney_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # Slaney's scale: linear up to 1 kHz, logarithmic above (27 mels per factor 6.4).
    linear = hz * 3.0 / 200.0
    above = 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(hz >= 1000.0, above, linear)


def _slaney_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    linear = mel * 200.0 / 3.0
    above = 1000.0 * np.exp((mel - 15.0) * (np.log(6.4) / 27.0))
    return np.where(mel >= 15.0, above, linear)


@cache
def mel_filters() -> npt.NDArray[np.float64]:
    """Whisper's mel filter bank, (80 bands, 201 FFT bins): triangles evenly spaced on Slaney's
    scale from 0 Hz to 8 kHz, each scaled to unit area."""
    edges_hz = _slaney_hz(
        np.linspace(_slaney_mel(np.array(0.0)), _slaney_mel(np.array(RATE / 2)), MEL_BANDS + 2)
    )
    bins_hz = np.linspace(0.0, RATE / 2, FFT_SIZE // 2 + 1)
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bins_hz[None, :] - lower) / (centre - lower)
    falling = (upper - bins_hz[None, :]) / (upper - centre)
    triangles = np.clip(np.minimum(rising, falling), 0.0, None)
    filters: npt.NDArray[np.float64] = triangles * (2.0 / (upper - lower))
    return filters


def log_mel_features(audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The model's input for 8 s of 16 kHz audio (padded or cut at the end): (80, 800), as
    Whisper's feature extractor makes it with its waveform normalised first."""
    samples = np.zeros(WINDOW_S * RATE, dtype=np.float32)
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)[: samples.size]
    samples[: audio.size] = audio
    samples = (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)
    padded = np.pad(samples.astype(np.float64), FFT_SIZE // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, FFT_SIZE)[::HOP]
    # Periodic Hann, as torch.stft's window.
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FFT_SIZE) / FFT_SIZE)
    power = np.abs(np.fft.rfft(frames * hann, axis=-1)) ** 2  # (frames, bins)
    mel = np.log10(np.maximum(power @ mel_filters().T, 1e-10)).T[:, :-1]  # last frame dropped
    mel = np.maximum(mel, mel.max() - 8.0)  # an 80 dB range below the loudest
    features: npt.NDArray[np.float32] = ((mel + 4.0) / 4.0).astype(np.float32)
    return features


class TurnModel(Protocol):
    """Judges whether the speech so far is a complete turn."""

    def complete_probability(self, speech: npt.NDArray[np.float32]) -> float:
        """The chance (0..1) that the speaker has finished, from 16 kHz mono speech."""
        ...


class SmartTurn:
    """Smart Turn v3.2 on ONNX Runtime, one thread (about 10-30 ms a call on a CPU core).
    Thread-safe: one model serves every conversation."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name

    def complete_probability(self, speech: npt.NDArray[np.float32]) -> float:
        tail = np.asarray(speech, dtype=np.float32).reshape(-1)[-WINDOW_S * RATE :]
        # The model was trained with the turn's end at the end of its window: zeros go in front.
        window = np.concatenate([np.zeros(WINDOW_S * RATE - tail.size, np.float32), tail])
        features = log_mel_features(window)[None, :, :]
        (output,) = self._session.run(None, {self._input: features})
        return float(np.asarray(output).reshape(-1)[0])


class TurnModelMissing(RuntimeError):
    """The Smart Turn model file is not where the settings say."""


_loaded: dict[Path, SmartTurn] = {}
_loading = threading.Lock()


def load_turn_model(path: Path | None = None) -> SmartTurn:
    """The model at `path` (default: where `make setup` puts it), loaded once per process."""
    path = path or default_model_path()
    with _loading:
        if path not in _loaded:
            if not path.is_file():
                raise TurnModelMissing(
                    f"no Smart Turn model at {path}: run `make setup` (it copies "
                    f"{MODEL_FILE} out of the pipecat-ai wheel), or set CHATTR_TURN_MODEL "
                    "to the file, or CHATTR_TURN_MODEL=off to end turns on a pause alone"
                )
            _loaded[path] = SmartTurn(path)
        return _loaded[path]
