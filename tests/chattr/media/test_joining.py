"""Joining per-sentence media: WAVs sample for sample, MP4s by packet copy (or re-encoded)."""

from __future__ import annotations

import io
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from chattr.media.joining import JoinError, join_mp4s, join_wavs


def make_wav(seconds: float, rate: int = 22050, channels: int = 1) -> bytes:
    samples = (np.sin(np.arange(int(seconds * rate)) / 10) * 8000).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(samples, channels).tobytes())
    return out.getvalue()


def make_mp4(path: Path, seconds: float, size: int = 64, fps: int = 25, rate: int = 44100) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=rate, layout="mono")
        frames = int(seconds * fps)
        for i in range(frames):
            image = np.full((size, size, 3), (i * 7) % 255, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
        total = int(seconds * rate)
        for start in range(0, total, 1024):
            n = min(1024, total - start)
            chunk = av.AudioFrame.from_ndarray(
                np.zeros((1, n), dtype=np.float32), format="fltp", layout="mono"
            )
            chunk.sample_rate, chunk.pts = rate, start
            out.mux(audio.encode(chunk))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path


def probe(path: Path) -> tuple[int, float]:
    with av.open(str(path)) as c:
        frames = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
        rate = c.streams.audio[0].codec_context.sample_rate
    return frames, samples / rate


def test_wavs_join_to_the_sum_of_their_durations() -> None:
    joined, duration = join_wavs([make_wav(1.0), make_wav(0.5), make_wav(0.25)])
    assert duration == pytest.approx(1.75, abs=1e-4)
    with wave.open(io.BytesIO(joined)) as w:
        assert w.getnframes() / w.getframerate() == pytest.approx(1.75, abs=1e-4)


def test_wavs_of_different_formats_are_refused() -> None:
    with pytest.raises(JoinError, match="piece 1"):
        join_wavs([make_wav(0.5, rate=22050), make_wav(0.5, rate=16000)])
    with pytest.raises(JoinError, match="not a readable WAV"):
        join_wavs([make_wav(0.5), b"RIFF nonsense"])


def test_compatible_mp4s_are_joined_by_copying_packets(tmp_path: Path) -> None:
    parts = [make_mp4(tmp_path / f"{i}.mp4", s) for i, s in enumerate((1.0, 0.6, 0.8))]
    copied = join_mp4s(parts, tmp_path / "joined.mp4")
    assert copied is True
    frames, audio_s = probe(tmp_path / "joined.mp4")
    assert frames == 25 + 15 + 20
    # Each copied AAC piece brings its encoder priming (about 1024 samples, 23 ms) along.
    assert audio_s == pytest.approx(2.4, abs=0.05 * 3)


def test_incompatible_mp4s_are_re_encoded(tmp_path: Path) -> None:
    parts = [make_mp4(tmp_path / "a.mp4", 0.8, size=64), make_mp4(tmp_path / "b.mp4", 0.4, size=96)]
    copied = join_mp4s(parts, tmp_path / "joined.mp4")
    assert copied is False
    frames, audio_s = probe(tmp_path / "joined.mp4")
    assert frames == 20 + 10
    assert audio_s == pytest.approx(1.2, abs=0.15)


def test_a_broken_mp4_is_a_join_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(JoinError):
        join_mp4s([bad], tmp_path / "joined.mp4")
