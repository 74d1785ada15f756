"""Joining per-sentence media: WAVs sample for sample, MP4s by packet copy (or re-encoded)."""

from __future__ import annotations

import io
import itertools
import wave
from fractions import Fraction
from pathlib import Path

import anyio
import av
import numpy as np
import pytest

from chattr.media.joining import JoinError, Mp4Joiner, ReplyVideo, join_mp4s, join_wavs
from chattr.media.store import MediaStore


def make_wav(seconds: float, rate: int = 22050, channels: int = 1) -> bytes:
    samples = (np.sin(np.arange(int(seconds * rate)) / 10) * 8000).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(samples, channels).tobytes())
    return out.getvalue()


def make_mp4(
    path: Path,
    seconds: float,
    size: int = 64,
    fps: int = 25,
    rate: int = 44100,
    mark_frame: int | None = None,
) -> Path:
    """A clip of dark frames and silence; `mark_frame` is white, with a click at its start."""
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=rate, layout="mono")
        frames = round(seconds * fps)
        for i in range(frames):
            shade = 255 if i == mark_frame else (i * 7) % 100
            image = np.full((size, size, 3), shade, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
        sound = np.zeros(int(seconds * rate), dtype=np.float32)
        if mark_frame is not None:
            click = mark_frame * rate // fps
            sound[click : click + rate // 100] = 0.8
        for start in range(0, sound.size, 1024):
            chunk = av.AudioFrame.from_ndarray(
                sound[None, start : start + 1024], format="fltp", layout="mono"
            )
            chunk.sample_rate, chunk.pts = rate, start
            out.mux(audio.encode(chunk))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path


def marks(path: Path) -> tuple[list[float], list[float]]:
    """Seconds at which white frames show and at which clicks start, in the joined file."""
    with av.open(str(path)) as c:
        flashes = [f.time for f in c.decode(video=0) if f.to_ndarray(format="gray").mean() > 200]
    with av.open(str(path)) as c:
        frames = list(c.decode(audio=0))
        rate = c.streams.audio[0].codec_context.sample_rate
    start = frames[0].time
    assert start is not None
    sound = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
    loud = np.flatnonzero(np.abs(sound) > 0.3)
    onsets = [loud[0]] + [b for a, b in itertools.pairwise(loud) if b - a > rate // 10]
    return flashes, [start + int(o) / rate for o in onsets]


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
    # The end is padded to a whole AAC frame (1024 samples) once, not once per piece.
    assert 2.4 <= audio_s < 2.4 + 1024 / 44100


@pytest.mark.parametrize("sizes", [(64, 64, 64, 64, 64, 64), (64, 96, 64, 96, 64, 96)])
def test_every_sentence_stays_in_sync(tmp_path: Path, sizes: tuple[int, ...]) -> None:
    """Pieces of uneven length (not whole AAC frames): each click still lands on its flash.

    Copied AAC packets used to put each piece ~45 ms later than the last (246 ms by the sixth).
    """
    lengths = (2.33, 1.71, 3.05, 2.5, 1.93, 2.77)
    parts = [
        make_mp4(tmp_path / f"{i}.mp4", seconds, size=size, mark_frame=8)
        for i, (seconds, size) in enumerate(zip(lengths, sizes, strict=True))
    ]
    copied = join_mp4s(parts, tmp_path / "joined.mp4")
    assert copied is (len(set(sizes)) == 1)
    flashes, clicks = marks(tmp_path / "joined.mp4")
    assert len(flashes) == len(clicks) == len(lengths)
    for flash, click in zip(flashes, clicks, strict=True):
        assert click == pytest.approx(flash, abs=0.005)
    starts = np.cumsum((0, *(round(seconds * 25) / 25 for seconds in lengths[:-1])))
    assert flashes == pytest.approx(list(starts + 8 / 25), abs=0.001)


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


def test_a_piece_unlike_the_first_makes_the_joiner_re_encode_all(tmp_path: Path) -> None:
    lengths, sizes = (1.32, 0.92, 1.1), (64, 96, 64)
    joiner = Mp4Joiner(tmp_path / "joined.mp4.part")
    for i, (seconds, size) in enumerate(zip(lengths, sizes, strict=True)):
        joiner.add(make_mp4(tmp_path / f"{i}.mp4", seconds, size=size, mark_frame=8))
    assert joiner.finish(tmp_path / "joined.mp4") is False
    assert not (tmp_path / "joined.mp4.part").exists()
    flashes, clicks = marks(tmp_path / "joined.mp4")
    assert flashes == pytest.approx([0.32, 1.64, 2.56], abs=0.001)
    assert clicks == pytest.approx(flashes, abs=0.005)


def test_a_piece_that_does_not_decode_stops_the_joiner_and_leaves_nothing(tmp_path: Path) -> None:
    joiner = Mp4Joiner(tmp_path / "joined.mp4.part")
    joiner.add(make_mp4(tmp_path / "0.mp4", 0.5))
    assert (tmp_path / "joined.mp4.part").exists()
    bad = tmp_path / "1.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(JoinError, match=r"1\.mp4 does not decode"):
        joiner.add(bad)
    joiner.discard()
    assert not (tmp_path / "joined.mp4.part").exists()


async def test_reply_video_joins_in_sentence_order_whatever_order_pieces_arrive(
    tmp_path: Path,
) -> None:
    lengths = (1.2, 0.8, 1.6)
    pieces = [
        make_mp4(tmp_path / f"src{i}.mp4", seconds, mark_frame=5).read_bytes()
        for i, seconds in enumerate(lengths)
    ]
    media = tmp_path / "media"
    media.mkdir()
    video = ReplyVideo(MediaStore(media))
    for index in (2, 0, 1):
        await video.add(index, pieces[index])
    name = await video.finish(3)
    assert sorted(p.name for p in media.iterdir()) == [name]  # pieces and the .part are gone
    flashes, clicks = marks(media / name)
    assert flashes == pytest.approx([0.2, 1.4, 2.2], abs=0.001)
    assert clicks == pytest.approx(flashes, abs=0.005)


async def test_reply_video_with_a_missing_piece_is_an_error_and_cleans_up(tmp_path: Path) -> None:
    video = ReplyVideo(MediaStore(tmp_path))
    await video.add(0, await anyio.Path(make_mp4(tmp_path / "src.mp4", 0.5)).read_bytes())
    (tmp_path / "src.mp4").unlink()
    await video.add(2, await anyio.Path(make_mp4(tmp_path / "src.mp4", 0.5)).read_bytes())
    (tmp_path / "src.mp4").unlink()
    with pytest.raises(JoinError, match="1 of 3 videos are missing"):
        await video.finish(3)
    assert [entry async for entry in anyio.Path(tmp_path).iterdir()] == []
