"""Join a reply's per-sentence media into one audio file and one video file.

WAVs are concatenated sample for sample. MP4s are concatenated without re-encoding (packets copied,
timestamps shifted) when their streams are compatible, which visualizr guarantees for one portrait;
otherwise they are decoded and encoded once more. Copied AAC keeps each piece's encoder priming
(about 23 ms of silence per sentence after the first): inaudible between sentences.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av


class JoinError(ValueError):
    """The pieces cannot be joined (different formats, undecodable files)."""


def join_wavs(pieces: Sequence[bytes]) -> tuple[bytes, float]:
    """Concatenate WAV files of one format; returns the joined file and its duration in seconds."""
    if not pieces:
        raise JoinError("nothing to join")
    params = None
    frames: list[bytes] = []
    for index, data in enumerate(pieces):
        try:
            with wave.open(io.BytesIO(data), "rb") as reader:
                these = (reader.getnchannels(), reader.getsampwidth(), reader.getframerate())
                if params is None:
                    params = these
                elif these != params:
                    raise JoinError(
                        f"piece {index} is {these} (channels, bytes, rate), not {params}"
                    )
                frames.append(reader.readframes(reader.getnframes()))
        except (wave.Error, EOFError) as exc:
            raise JoinError(f"piece {index} is not a readable WAV: {exc}") from exc
    assert params is not None
    channels, width, rate = params
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        for chunk in frames:
            writer.writeframes(chunk)
    total = sum(len(chunk) for chunk in frames) // (channels * width)
    return out.getvalue(), total / rate


def _signature(container: Any) -> tuple[Any, ...]:
    """What must be equal across files for their packets to share one stream."""
    parts: list[Any] = []
    for stream in container.streams:
        ctx = stream.codec_context
        if stream.type == "video":
            parts.append(
                (
                    "video",
                    ctx.name,
                    ctx.width,
                    ctx.height,
                    ctx.pix_fmt,
                    stream.time_base,
                    bytes(ctx.extradata or b""),
                )
            )
        elif stream.type == "audio":
            parts.append(
                (
                    "audio",
                    ctx.name,
                    ctx.sample_rate,
                    ctx.channels,
                    stream.time_base,
                    bytes(ctx.extradata or b""),
                )
            )
    return tuple(parts)


def join_mp4s(paths: Sequence[Path], destination: Path) -> bool:
    """Concatenate MP4s into `destination`; True when it could copy packets, False if re-encoded."""
    if not paths:
        raise JoinError("nothing to join")
    try:
        containers = [av.open(str(p)) for p in paths]
    except av.error.FFmpegError as exc:  # type: ignore[attr-defined]
        raise JoinError(f"a video does not decode: {exc}") from exc
    try:
        signatures = {_signature(c) for c in containers}
        if len(signatures) == 1:
            _remux(containers, destination)
            return True
        _reencode(containers, destination)
        return False
    finally:
        for c in containers:
            c.close()


def _remux(containers: Sequence[Any], destination: Path) -> None:
    with av.open(str(destination), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        targets = {}
        for stream in containers[0].streams:
            if stream.type in ("video", "audio"):
                targets[stream.type] = out.add_stream_from_template(stream)
        offsets = dict.fromkeys(targets, 0)
        for container in containers:
            # Each file's timestamps start at its own origin (AAC priming makes it negative):
            # shift so each stream continues right where the previous file's ended.
            bases: dict[str, int] = {}
            ends = dict(offsets)
            for packet in container.demux():
                kind = packet.stream.type
                if packet.dts is None or kind not in targets:
                    continue
                shift = offsets[kind] - bases.setdefault(kind, packet.dts)
                packet.pts = (packet.pts if packet.pts is not None else packet.dts) + shift
                packet.dts += shift
                ends[kind] = max(ends[kind], packet.pts + (packet.duration or 0))
                packet.stream = targets[kind]
                out.mux(packet)
            offsets = ends


def _reencode(containers: Sequence[Any], destination: Path) -> None:
    first_video = containers[0].streams.video[0]
    width, height = first_video.codec_context.width, first_video.codec_context.height
    fps = Fraction(first_video.average_rate or 25)
    with av.open(str(destination), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        vstream = out.add_stream("libx264", rate=fps, options={"preset": "veryfast"})
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        astream = out.add_stream("aac", rate=44100, layout="mono")
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=44100)
        video_index = audio_samples = 0
        for container in containers:
            for frame in container.decode(*container.streams.video, *container.streams.audio):
                if isinstance(frame, av.VideoFrame):
                    frame = frame.reformat(width=width, height=height, format="yuv420p")
                    frame.pts, frame.time_base = video_index, Fraction(1, 1) / fps
                    video_index += 1
                    out.mux(vstream.encode(frame))
                else:
                    for chunk in resampler.resample(frame):
                        chunk.pts, chunk.time_base = audio_samples, Fraction(1, 44100)
                        audio_samples += chunk.samples
                        out.mux(astream.encode(chunk))
        out.mux(vstream.encode(None))
        out.mux(astream.encode(None))
