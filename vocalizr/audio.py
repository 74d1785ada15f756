"""Decoding reference clips and writing WAV files, without FFmpeg system libraries."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import soundfile as sf

from chatacter_common.service import audio as common_audio
from vocalizr.errors import AudioTooLong, BadReference

# Below this RMS (about -60 dBFS) a clip carries no voice to clone.
SILENCE_RMS = 1e-3


@dataclass(frozen=True)
class Clip:
    """Mono float32 samples in [-1, 1] at `sample_rate`."""

    samples: npt.NDArray[np.float32]
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def content_hash(self) -> str:
        """SHA-256 of the samples and rate: the key of every per-voice cache."""
        digest = hashlib.sha256(str(self.sample_rate).encode())
        digest.update(np.ascontiguousarray(self.samples, dtype=np.float32).tobytes())
        return digest.hexdigest()


def decode_audio(data: bytes, max_seconds: float) -> Clip:
    """Decode any common audio format to mono, refusing clips over `max_seconds` before they
    are decoded (header length first, then a capped streaming decode: see the service kit)."""
    try:
        decoded = common_audio.decode_audio(data, max_seconds=max_seconds)
    except AudioTooLong as error:
        said = f"{error.seconds:.1f} s" if error.seconds is not None else f"over {max_seconds:g} s"
        raise BadReference(
            f"reference clip is {said}; send at most {max_seconds:g} s of speech (trim it)"
        ) from None
    return Clip(decoded.samples, decoded.sample_rate)


def check_reference(clip: Clip, min_s: float, max_s: float) -> None:
    """Refuse clips that cannot clone a voice: too short, too long or silent."""
    if clip.duration_s < min_s:
        raise BadReference(
            f"reference clip is {clip.duration_s:.1f} s; send {min_s:g}–{max_s:g} s of speech"
        )
    if clip.duration_s > max_s:
        raise BadReference(
            f"reference clip is {clip.duration_s:.1f} s; send {min_s:g}–{max_s:g} s of speech "
            "(trim it)"
        )
    rms = float(np.sqrt(np.mean(np.square(clip.samples, dtype=np.float64))))
    if rms < SILENCE_RMS:
        raise BadReference("reference clip is silent; send a recording of someone speaking")


def write_wav(path: Path, samples: npt.NDArray[np.float32], sample_rate: int) -> None:
    """Write PCM 16-bit mono WAV."""
    sf.write(path, np.clip(samples, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")


def wav_bytes(samples: npt.NDArray[np.float32], sample_rate: int) -> bytes:
    """The same WAV as `write_wav`, in memory."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def pcm16(samples: npt.NDArray[np.float32]) -> bytes:
    """Raw little-endian PCM 16-bit samples (for streaming after a WAV header)."""
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def streaming_wav_header(sample_rate: int) -> bytes:
    """A WAV header for a stream of unknown length (sizes set to the maximum, as players expect)."""
    unknown = 0xFFFFFFFF
    byte_rate = sample_rate * 2
    return (
        b"RIFF"
        + unknown.to_bytes(4, "little")
        + b"WAVEfmt "
        + (16).to_bytes(4, "little")
        + (1).to_bytes(2, "little")  # PCM
        + (1).to_bytes(2, "little")  # mono
        + sample_rate.to_bytes(4, "little")
        + byte_rate.to_bytes(4, "little")
        + (2).to_bytes(2, "little")  # block align
        + (16).to_bytes(2, "little")  # bits per sample
        + b"data"
        + unknown.to_bytes(4, "little")
    )


# format → (encoder, container, output sample rate or None to keep the WAV's, media type)
ENCODINGS: dict[str, tuple[str, str, int | None, str]] = {
    "mp3": ("libmp3lame", "mp3", None, "audio/mpeg"),
    "ogg": ("libopus", "ogg", 48000, "audio/ogg"),  # Opus runs at 48 kHz
}


def transcode_wav(source: Path, target: Path, audio_format: str) -> None:
    """Encode a produced WAV as MP3 or Ogg Opus with PyAV's bundled FFmpeg."""
    encoder, container_format, fixed_rate, _ = ENCODINGS[audio_format]
    samples, rate = sf.read(source, dtype="float32", always_2d=True)
    out_rate = fixed_rate or int(rate)
    partial = target.with_name(target.name + ".part")
    with av.open(str(partial), mode="w", format=container_format) as out:
        stream = out.add_stream(encoder, rate=out_rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        codec = stream.codec_context
        # Encoders take fixed-size frames (1152 for MP3, 960 for Opus); the resampler cuts them.
        resampler = av.AudioResampler(
            format=codec.format, layout="mono", rate=out_rate, frame_size=codec.frame_size
        )
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples.mean(axis=1)[None, :]), format="flt", layout="mono"
        )
        frame.sample_rate = int(rate)
        for piece in resampler.resample(frame) + resampler.resample(None):
            out.mux(stream.encode(piece))
        out.mux(stream.encode(None))
    partial.replace(target)  # readers never see a half-written file
