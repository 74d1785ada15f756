"""One video from audio and a portrait: locate the face, prepare (cached), render, encode."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from chatacter_common.first_speech import VideoPause
from visualizr.engines import TalkingHeadEngine, frame_portrait
from visualizr.expressions import NEUTRAL_CUE, ExpressionCue
from visualizr.geometry import FaceLocator
from visualizr.media import AUDIO_RATE, frame_count, write_mp4
from visualizr.portraits import Portrait

# Prepared portraits hold warp fields or latents (a few MB each); keep the recent ones.
PREPARED_CACHE_SIZE = 16


@dataclass(frozen=True)
class VideoResult:
    """A finished video file and its timing."""

    path: Path
    duration_s: float
    frames: int
    fps: int
    size: int
    render_s: float


class PreparedCache:
    """Prepared portraits by (portrait hash, size): built once, reused by every request."""

    def __init__(self, capacity: int = PREPARED_CACHE_SIZE) -> None:
        self._capacity = capacity
        self._items: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[tuple[str, int], threading.Lock] = {}

    def get_or_build(self, key: tuple[str, int], build: Any) -> Any:
        """The cached item, or `build()`'s result stored under `key` (one build per key)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            value = build()
            with self._lock:
                self._items[key] = value
                self._items.move_to_end(key)
                while len(self._items) > self._capacity:
                    self._items.popitem(last=False)
                self._building.pop(key, None)
            return value

    def __len__(self) -> int:
        return len(self._items)


class Renderer:
    """Owns the engine, the face locator and the cache; renders one video per call (thread-safe)."""

    def __init__(
        self, engine: TalkingHeadEngine, locator: FaceLocator, *, encoder_threads: int = 1
    ) -> None:
        self.engine = engine
        self.locator = locator
        self.cache = PreparedCache()
        self.encoder_threads = encoder_threads

    def prepare(self, portrait: Portrait, size: int) -> Any:
        """The engine's prepared portrait at this size, from the cache when it is there."""

        def build() -> Any:
            geometry = self.locator.locate(
                portrait.image,
                portrait.key,
                face_box=portrait.face_box,
                mouth_box=portrait.mouth_box,
            )
            return self.engine.prepare(frame_portrait(portrait.image, geometry, size))

        return self.cache.get_or_build((portrait.key, size), build)

    def render(
        self,
        portrait: Portrait,
        audio: npt.NDArray[np.float32],
        *,
        fps: int,
        size: int,
        path: Path,
        cue: ExpressionCue = NEUTRAL_CUE,
        pause: VideoPause | None = None,
    ) -> VideoResult:
        """Render and encode the talking head for 44.1 kHz mono `audio` into `path` (MP4), the
        face showing the cue's expression. `pause`: this video's waits for first sentences, if
        any: each frame is made after them."""
        started = time.perf_counter()
        prepared = self.prepare(portrait, size)
        frames = frame_count(audio, fps)
        tmp = path.with_name(path.name + ".part")
        try:
            made = self.engine.render(prepared, audio, fps, frames, cue)
            written = write_mp4(
                tmp,
                pause.frames(made) if pause is not None else made,
                audio=audio,
                size=size,
                fps=fps,
                threads=self.encoder_threads,
            )
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        return VideoResult(
            path=path,
            duration_s=audio.size / AUDIO_RATE,
            frames=written,
            fps=fps,
            size=size,
            render_s=time.perf_counter() - started,
        )
