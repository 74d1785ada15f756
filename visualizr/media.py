"""Decoding audio and images from bytes, and writing the MP4 that plays in a browser.

Every MP4 made for one portrait and size has identical codec parameters, so a client can join
several with a stream copy (no re-encode): H.264 (libx264, preset ultrafast, Constrained Baseline),
yuv420p, time base 1/fps, square frames of the requested size; AAC-LC mono at 44100 Hz, 96 kb/s;
`+faststart` (moov atom first).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from chatacter_common.service.audio import decode_audio as bounded_decode
from visualizr.errors import AudioTooLong, BadAudio, BadImage

AUDIO_RATE = 44100
AUDIO_BITRATE = 96_000
# Below this peak (about -66 dBFS) audio counts as silence: nothing to lip-sync.
SILENCE_PEAK = 5e-4


def decode_audio(data: bytes, *, max_seconds: float) -> npt.NDArray[np.float32]:
    """Decode any audio PyAV reads to mono float32 at AUDIO_RATE; refuse silent or long clips.

    The length is checked from the header before decoding, and the decode is capped (see the
    service kit), so a small file claiming hours of audio costs no memory.
    """
    audio = bounded_decode(data, max_seconds=max_seconds, rate=AUDIO_RATE).samples
    if audio.size < AUDIO_RATE // 20:
        raise BadAudio("the audio is shorter than 50 ms; send the speech to animate")
    if audio.size > max_seconds * AUDIO_RATE + 1:
        raise AudioTooLong(
            f"the audio is longer than {max_seconds:g} s; split it into shorter clips"
        )
    if float(np.abs(audio).max()) < SILENCE_PEAK:
        raise BadAudio("the audio is silent; send speech to animate", code="silent_audio")
    return audio


def decode_image(data: bytes, *, max_pixels: int) -> npt.NDArray[np.uint8]:
    """Decode JPEG/PNG/WebP/... to BGR uint8, alpha flattened onto white, EXIF rotation applied."""
    if not data:
        raise BadImage("the image is empty; send a JPEG, PNG or WebP portrait")
    try:
        image: Image.Image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > max_pixels:
            raise BadImage(
                f"the image is {width}x{height}, more than {max_pixels} pixels; send a smaller one",
                code="image_too_large",
                status=413,
            )
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba)
        rgb = np.asarray(image.convert("RGB"))
    except BadImage:
        raise
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as error:
        raise BadImage(f"the image does not decode ({error}); send a JPEG, PNG or WebP") from None
    if rgb.shape[0] < 32 or rgb.shape[1] < 32:
        raise BadImage("the image is smaller than 32x32 pixels; send a real portrait")
    return np.ascontiguousarray(rgb[:, :, ::-1])


def frame_count(audio: npt.NDArray[np.float32], fps: int) -> int:
    """Number of video frames covering the audio: round(duration x fps), at least 1."""
    return max(1, round(audio.size * fps / AUDIO_RATE))


class Mp4Writer:
    """Encodes BGR frames and mono audio into a faststart MP4, interleaving as it goes."""

    def __init__(
        self, path: Path, *, size: int, fps: int, audio: npt.NDArray[np.float32], threads: int = 1
    ) -> None:
        self._container = av.open(
            str(path), mode="w", format="mp4", options={"movflags": "+faststart"}
        )
        self._fps = fps
        self._size = size
        video = self._container.add_stream(
            "libx264", rate=fps, options={"preset": "ultrafast", "crf": "23"}
        )
        video.width = size
        video.height = size
        video.pix_fmt = "yuv420p"
        video.time_base = Fraction(1, fps)
        video.codec_context.thread_count = threads
        self._video = video
        # The "fast" AAC coder is 3x quicker than the default two-loop search; speech loses nothing.
        sound = self._container.add_stream("aac", rate=AUDIO_RATE, options={"aac_coder": "fast"})
        sound.layout = "mono"
        sound.bit_rate = AUDIO_BITRATE
        self._audio_stream = sound
        self._audio = audio
        self._audio_pos = 0
        self._frames = 0

    def write(self, frame_bgr: npt.NDArray[np.uint8]) -> None:
        """Add one frame (size x size x 3, uint8 BGR) and the audio that plays under it."""
        yuv = np.asarray(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_I420), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = self._frames
        self._container.mux(self._video.encode(frame))
        self._frames += 1
        self._write_audio_until(self._frames * AUDIO_RATE // self._fps)

    def _write_audio_until(self, sample: int) -> None:
        end = min(sample, self._audio.size)
        if end <= self._audio_pos:
            return
        chunk = self._audio[self._audio_pos : end]
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._audio_pos
        frame.time_base = Fraction(1, AUDIO_RATE)
        self._container.mux(self._audio_stream.encode(frame))
        self._audio_pos = end

    def close(self) -> None:
        """Flush both encoders and finish the file."""
        self._write_audio_until(self._audio.size)
        self._container.mux(self._video.encode(None))
        self._container.mux(self._audio_stream.encode(None))
        self._container.close()


def write_mp4(
    path: Path,
    frames: Iterable[npt.NDArray[np.uint8]],
    *,
    audio: npt.NDArray[np.float32],
    size: int,
    fps: int,
    threads: int = 1,
) -> int:
    """Encode all frames with the audio into `path`; returns the number of frames written."""
    writer = Mp4Writer(path, size=size, fps=fps, audio=audio, threads=threads)
    count = 0
    try:
        for frame in frames:
            writer.write(frame)
            count += 1
    finally:
        writer.close()
    return count
