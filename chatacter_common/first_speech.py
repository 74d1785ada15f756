"""A reply's first sentence goes first on shared cores: a file that says one is being spoken.

A person waits for a reply's first audio; everything else (later sentences, videos) can wait a
moment. Within vocalizr, a first sentence goes before the others and stops a later one
(`JobQueue`). But a video rendering in visualizr on the same cores still takes CPU from it, and a
lower niceness does not stop it (`VISUALIZR_NICENESS` only weighs it). So where chattr starts the
services itself, on its own machine, it creates a file while any reply's first sentence is being
spoken (`FirstSpeechMarker`), and visualizr's videos wait while the file is there, before their
work and between their frames (`FirstSpeechPause`), each for a bounded time in all: a file left
behind (chattr killed) delays each video by at most that bound, and a busy server's stream of
first sentences cannot stall a video for good.

A file, not a request: the two programs share a disk folder already, and a look costs a `stat`
(microseconds) per frame, with nothing to answer when chattr or visualizr is gone. Services on
other machines do not share cores, and need none of this.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# How often a paused render looks again: a first sentence takes 0.1-0.4 s on a CPU (Piper).
POLL_S = 0.01


class FirstSpeechMarker:
    """chattr's side: the file exists while at least one first sentence is being spoken."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._speaking = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)  # one left by a chattr that was killed

    def begin(self) -> None:
        self._speaking += 1
        if self._speaking == 1:
            self.path.touch()

    def end(self) -> None:
        self._speaking -= 1
        if self._speaking == 0:
            self.path.unlink(missing_ok=True)

    @property
    def speaking(self) -> int:
        """First sentences being spoken now."""
        return self._speaking


class FirstSpeechPause:
    """visualizr's side: each video waits, before its work and between its frames, while a
    first sentence is being spoken, `budget_s` at most in all (`video`)."""

    def __init__(self, path: Path, budget_s: float) -> None:
        self.path = path
        self.budget_s = budget_s

    def video(self) -> VideoPause:
        """The waits of one video, with a budget of its own."""
        return VideoPause(self.path, self.budget_s)


class VideoPause:
    """One video's waits: while the file is there, until `left_s` is spent."""

    def __init__(self, path: Path, left_s: float) -> None:
        self.path = path
        self.left_s = left_s

    def wait(self) -> float:
        """Wait while a first sentence is being spoken, within the budget; the seconds waited."""
        if self.left_s <= 0 or not self.path.exists():
            return 0.0
        started = time.monotonic()
        deadline = started + self.left_s
        while self.path.exists() and time.monotonic() < deadline:
            time.sleep(POLL_S)
        waited = time.monotonic() - started
        self.left_s -= waited
        return waited

    def frames(self, frames: Iterable[T]) -> Iterator[T]:
        """`frames`, with the waits between them: each is asked for (made, where the engine
        makes them one by one) only after the wait."""
        iterator = iter(frames)
        while True:
            self.wait()
            try:
                frame = next(iterator)
            except StopIteration:
                return
            yield frame
