"""Audio decoding bounded before it allocates: the length is read from the header first, and
the decode itself streams with a cap on samples, so a small file that claims (or holds) hours
of audio costs milliseconds and a few megabytes, not gigabytes."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt
import soundfile as sf

from chatacter_common.service.errors import AudioTooLong, UndecodableAudio

MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 16
BLOCK_FRAMES = 65_536
UNKNOWN_FRAMES = 1 << 62  # soundfile reads this many frames at a time
FORMATS = "send WAV, FLAC, OGG, MP3 or M4A"


@dataclass(frozen=True)
class DecodedAudio:
    """Mono float32 samples at `sample_rate`."""

    samples: npt.NDArray[np.float32]
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate


def _too_long(seconds: float | None, max_seconds: float) -> AudioTooLong:
    said = f"{seconds:.1f} s" if seconds is not None else f"over {max_seconds:g} s"
    return AudioTooLong(
        f"the audio is {said}; at most {max_seconds:g} s is accepted (trim it)", seconds=seconds
    )


def _check_format(rate: int, channels: int) -> None:
    if not 0 < rate <= MAX_SAMPLE_RATE or not 0 < channels <= MAX_CHANNELS:
        raise UndecodableAudio(
            f"the audio claims {rate} Hz and {channels} channels; {FORMATS} at up to "
            f"{MAX_SAMPLE_RATE} Hz and {MAX_CHANNELS} channels"
        )


def decode_audio(data: bytes, *, max_seconds: float, rate: int | None = None) -> DecodedAudio:
    """Decode any common format to mono; refuse more than `max_seconds` before decoding it.

    With `rate` None, libsndfile reads first (exact samples for WAV/FLAC/OGG) and PyAV's FFmpeg
    takes the rest; with a `rate`, PyAV decodes and resamples to it in one pass.
    """
    if not data:
        raise UndecodableAudio(f"the audio is empty; {FORMATS}")
    if rate is None:
        try:
            handle = sf.SoundFile(io.BytesIO(data))
        except Exception:
            handle = None
        if handle is not None:
            with handle:
                return _read_soundfile(handle, max_seconds)
    try:
        return _decode_with_av(data, max_seconds, rate)
    except (AudioTooLong, UndecodableAudio):
        raise
    except Exception as error:
        raise UndecodableAudio(
            f"the audio does not decode ({type(error).__name__}); {FORMATS}"
        ) from None


def _read_soundfile(handle: sf.SoundFile, max_seconds: float) -> DecodedAudio:
    rate, channels = int(handle.samplerate), int(handle.channels)
    _check_format(rate, channels)
    cap = int(max_seconds * rate) + 1
    # The header's length: refused before a sample is decoded (libsndfile says 2**63-1 when the
    # header does not know, and then only the capped decode below can tell).
    if cap < handle.frames < UNKNOWN_FRAMES:
        raise _too_long(handle.frames / rate, max_seconds)
    blocks: list[npt.NDArray[np.float32]] = []
    total = 0
    try:
        while total <= cap:  # a header may lie or say nothing: the decode is capped too
            block = handle.read(min(BLOCK_FRAMES, cap + 1 - total), dtype="float32", always_2d=True)
            if block.shape[0] == 0:
                break
            blocks.append(block.mean(axis=1))
            total += block.shape[0]
    except Exception as error:
        raise UndecodableAudio(
            f"the audio does not decode ({type(error).__name__}); {FORMATS}"
        ) from None
    if total > cap:
        raise _too_long(None, max_seconds)
    samples = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return _finite(samples, rate)


def _decode_with_av(data: bytes, max_seconds: float, rate: int | None) -> DecodedAudio:
    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.audio:
            raise UndecodableAudio(f"the file has no audio stream; {FORMATS}")
        stream = container.streams.audio[0]
        native = int(stream.codec_context.sample_rate or stream.rate or 0)
        _check_format(native, int(stream.codec_context.channels or 1))
        declared = _declared_seconds(container, stream)
        if declared is not None and declared > max_seconds + 0.5:
            raise _too_long(declared, max_seconds)
        out_rate = rate or native
        cap = int(max_seconds * out_rate) + out_rate // 10
        resampler = av.AudioResampler(format="flt", layout="mono", rate=out_rate)
        chunks: list[npt.NDArray[np.float32]] = []
        total = 0
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunk = np.asarray(out.to_ndarray(), np.float32).reshape(-1)  # "flt": a no-op
                chunks.append(chunk)
                total += chunk.size
            if total > cap:
                raise _too_long(None, max_seconds)
        for out in resampler.resample(None):
            chunks.append(np.asarray(out.to_ndarray(), np.float32).reshape(-1))
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return _finite(samples, out_rate)


def _declared_seconds(
    container: av.container.InputContainer, stream: av.AudioStream
) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _finite(samples: npt.NDArray[np.float32], rate: int) -> DecodedAudio:
    if samples.size == 0:
        raise UndecodableAudio(f"the audio holds no samples; {FORMATS}")
    clean = np.nan_to_num(samples.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return DecodedAudio(np.clip(clean, -1.0, 1.0).astype(np.float32), rate)
