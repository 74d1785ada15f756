"""Join a reply's per-sentence media into one audio file and one video file.

WAVs are concatenated sample for sample. In MP4s the video is the timeline: its packets are copied
without re-encoding when the pieces' video streams are compatible, which visualizr guarantees for
one portrait (otherwise decoded and encoded once more). The sound is decoded, each piece's fitted
to exactly its own video's length, and encoded once: copying the AAC packets instead kept every
piece's encoder priming and padding, and the sound fell ~45 ms further behind the lips with each
sentence (a quarter of a second by the sixth). Encoding 35 s of speech costs about 0.1 s, so a
reply's video is joined piece by piece as the pieces arrive (`ReplyVideo`), not all at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
import wave
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from chattr.media.store import MediaStore

log = logging.getLogger(__name__)


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


AUDIO_BIT_RATE = 96_000
# Samples handed to the encoder at a time (any size works; this keeps frames small).
ENCODE_CHUNK = 44_100


def _video_signature(container: Any) -> tuple[Any, ...]:
    """What must be equal across files for their video packets to share one stream."""
    if not container.streams.video:
        raise JoinError("a piece has no video stream")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    return (
        ctx.name,
        ctx.width,
        ctx.height,
        ctx.pix_fmt,
        stream.time_base,
        bytes(ctx.extradata or b""),
    )


class _SoundTrack:
    """The joined sound: each piece's decoded audio fitted to its video's length, encoded once."""

    def __init__(self, out: Any, rate: int) -> None:
        self.out = out
        self.rate = rate
        self.stream = out.add_stream("aac", rate=rate, options={"aac_coder": "fast"})
        self.stream.layout = "mono"
        self.stream.bit_rate = AUDIO_BIT_RATE
        self.written = 0
        self._piece: list[npt.NDArray[np.float32]] = []
        self._resampler = self._new_resampler()

    def _new_resampler(self) -> Any:
        return av.AudioResampler(format="flt", layout="mono", rate=self.rate)

    def decode(self, packet: Any) -> None:
        """Decode one audio packet of the current piece (the flushing empty packet too)."""
        for frame in packet.decode():
            for chunk in self._resampler.resample(frame):
                self._piece.append(chunk.to_ndarray().reshape(-1))

    def end_piece(self, seconds: Fraction) -> None:
        """Encode the current piece's sound, padded with silence or cut to `seconds`."""
        for chunk in self._resampler.resample(None):
            self._piece.append(chunk.to_ndarray().reshape(-1))
        sound = np.concatenate(self._piece) if self._piece else np.zeros(0, np.float32)
        wanted = round(seconds * self.rate)
        if sound.size < wanted:
            sound = np.concatenate([sound, np.zeros(wanted - sound.size, np.float32)])
        self._encode(np.ascontiguousarray(sound[:wanted], dtype=np.float32))
        self._piece = []
        self._resampler = self._new_resampler()

    def _encode(self, sound: npt.NDArray[np.float32]) -> None:
        for start in range(0, sound.size, ENCODE_CHUNK):
            chunk = sound[start : start + ENCODE_CHUNK]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = self.rate
            frame.pts, frame.time_base = self.written, Fraction(1, self.rate)
            self.written += chunk.size
            self.out.mux(self.stream.encode(frame))

    def close(self) -> None:
        self.out.mux(self.stream.encode(None))


def _audio_rate(container: Any) -> int:
    audio = container.streams.audio
    return int(audio[0].codec_context.sample_rate) if audio else 44_100


def _open(path: Path) -> Any:
    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise JoinError(f"{path.name} does not decode: {exc}") from exc


def join_mp4s(paths: Sequence[Path], destination: Path) -> bool:
    """Concatenate MP4s into `destination`; True when it could copy the video, False if re-encoded.

    Each piece's sound starts with its own first frame, whatever the pieces' lengths.
    """
    joiner = Mp4Joiner(destination.with_name(destination.name + ".part"))
    try:
        for path in paths:
            joiner.add(path)
        return joiner.finish(destination)
    except BaseException:
        joiner.discard()
        raise


class Mp4Joiner:
    """Joins MP4 pieces into one file as they come, in order: the work is done while the later
    pieces are still being made, and finishing is left with only the last one.

    Video packets are copied. Should a piece's video differ from the first's (visualizr never
    does that for one portrait), `finish` joins all the pieces again by re-encoding. Thread-safe:
    a turn that is abandoned may `discard` while a worker thread is still adding a piece.
    """

    def __init__(self, working: Path) -> None:
        self.working = working  # the file being written; renamed when finished
        self.paths: list[Path] = []
        self._lock = threading.RLock()
        self._discarded = False
        self._out: Any = None
        self._video: Any = None
        self._sound: _SoundTrack | None = None
        self._signature: tuple[Any, ...] | None = None
        self._offset = 0
        self._differs = False

    def add(self, path: Path) -> None:
        """Append the next piece (JoinError if it does not decode)."""
        with self._lock:
            if self._discarded:
                raise JoinError("the join was abandoned")
            self._add(path)

    def _add(self, path: Path) -> None:
        self.paths.append(path)
        if self._differs:
            return
        container = _open(path)
        try:
            signature = _video_signature(container)
            if self._out is None:
                self._start(container, signature)
            elif signature != self._signature:
                self._differs = True
                return
            self._copy(container)
        except av.error.FFmpegError as exc:
            raise JoinError(f"{path.name} does not decode: {exc}") from exc
        finally:
            container.close()

    def _start(self, container: Any, signature: tuple[Any, ...]) -> None:
        self._signature = signature
        self._out = av.open(
            str(self.working), "w", format="mp4", options={"movflags": "+faststart"}
        )
        self._video = self._out.add_stream_from_template(container.streams.video[0])
        self._sound = _SoundTrack(self._out, _audio_rate(container))

    def _copy(self, container: Any) -> None:
        assert self._sound is not None
        source = container.streams.video[0]
        base: int | None = None
        end = self._offset
        for packet in container.demux(source, *container.streams.audio[:1]):
            if packet.stream.type == "audio":
                self._sound.decode(packet)
                continue
            if packet.dts is None:
                continue
            # Each file's timestamps start at its own origin: continue where the last one ended.
            if base is None:
                base = packet.dts
            shift = self._offset - base
            packet.pts = (packet.pts if packet.pts is not None else packet.dts) + shift
            packet.dts += shift
            end = max(end, packet.pts + (packet.duration or 0))
            packet.stream = self._video
            self._out.mux(packet)
        self._sound.end_piece(Fraction(end - self._offset) * source.time_base)
        self._offset = end

    def finish(self, destination: Path) -> bool:
        """Complete the file at `destination`; True when the video was copied, False if
        the pieces had to be re-encoded."""
        with self._lock:
            if self._discarded:
                raise JoinError("the join was abandoned")
            return self._finish(destination)

    def _finish(self, destination: Path) -> bool:
        if not self.paths:
            raise JoinError("nothing to join")
        if self._differs:
            self.discard()
            _reencode_files(self.paths, destination)
            return False
        assert self._sound is not None
        try:
            self._sound.close()
            self._out.close()
        except av.error.FFmpegError as exc:
            self.discard()
            raise JoinError(f"could not finish the joined video: {exc}") from exc
        self._out = None
        self.working.replace(destination)
        return True

    def discard(self) -> None:
        """Give up: close and delete the unfinished file (the pieces are the caller's)."""
        with self._lock:
            self._discarded = True
            if self._out is not None:
                with contextlib.suppress(av.error.FFmpegError):
                    self._out.close()
                self._out = None
            self.working.unlink(missing_ok=True)


def _reencode_files(paths: Sequence[Path], destination: Path) -> None:
    """Decode every piece and encode them once more as one file (pieces that differ)."""
    containers = []
    try:
        for path in paths:
            containers.append(_open(path))
        with av.open(
            str(destination), "w", format="mp4", options={"movflags": "+faststart"}
        ) as out:
            _reencode_video(containers, out)
    except av.error.FFmpegError as exc:
        raise JoinError(f"a video does not decode: {exc}") from exc
    finally:
        for container in containers:
            container.close()


def _reencode_video(containers: Sequence[Any], out: Any) -> None:
    first_video = containers[0].streams.video[0]
    width, height = first_video.codec_context.width, first_video.codec_context.height
    fps = Fraction(first_video.average_rate or 25)
    video = out.add_stream("libx264", rate=fps, options={"preset": "veryfast"})
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    sound = _SoundTrack(out, _audio_rate(containers[0]))
    frames = 0
    for container in containers:
        first = frames
        for packet in container.demux(container.streams.video[0], *container.streams.audio[:1]):
            if packet.stream.type == "audio":
                sound.decode(packet)
                continue
            for frame in packet.decode():
                frame = frame.reformat(width=width, height=height, format="yuv420p")
                frame.pts, frame.time_base = frames, 1 / fps
                frames += 1
                out.mux(video.encode(frame))
        sound.end_piece((frames - first) / fps)
    out.mux(video.encode(None))
    sound.close()


class ReplyVideo:
    """The reply's whole video, joined piece by piece in sentence order as the pieces arrive."""

    def __init__(self, store: MediaStore) -> None:
        self.store = store
        self.name = store.new_id()
        self.joiner = Mp4Joiner(store.unfinished_path(self.name))
        self.failure: str | None = None
        self._arrived: dict[int, Path] = {}
        self._joined = 0
        self._lock = asyncio.Lock()

    async def add(self, index: int, data: bytes) -> None:
        """Sentence `index`'s video; joined now if every earlier one is in."""
        part = self.store.piece_path(self.name, index)
        await asyncio.to_thread(part.write_bytes, data)
        self._arrived[index] = part
        async with self._lock:
            while self.failure is None and self._joined in self._arrived:
                try:
                    await asyncio.to_thread(self.joiner.add, self._arrived[self._joined])
                except JoinError as exc:
                    self.failure = str(exc)
                self._joined += 1

    def fail(self, reason: str) -> None:
        self.failure = self.failure or reason

    async def finish(self, count: int) -> str:
        """The joined file's name, once all `count` pieces are in and it is stored (JoinError
        otherwise; StorageError when the store fails)."""
        async with self._lock:
            try:
                if self.failure is not None:
                    raise JoinError(self.failure)
                missing = [index for index in range(count) if index not in self._arrived]
                if missing:
                    raise JoinError(f"{len(missing)} of {count} videos are missing")
                path = self.store.joined_path(self.name, "mp4")
                copied = await asyncio.to_thread(self.joiner.finish, path)
                if not copied:
                    log.info("joined video was re-encoded: the pieces' streams differed")
                name = f"{self.name}.mp4"
                await asyncio.to_thread(self.store.keep, name)
                return name
            finally:
                self.discard()

    def discard(self) -> None:
        """Delete the pieces and any unfinished file."""
        self.joiner.discard()
        for part in self._arrived.values():
            part.unlink(missing_ok=True)
        self._arrived.clear()
