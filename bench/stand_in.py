"""Service replicas whose engines cost wall time, not CPU (a GPU stand-in), for bench/scale.py.

Speech sleeps `SPEECH_BASE_S + SPEECH_PER_AUDIO_S x seconds of audio` and returns a tone; the
talking head sleeps `VIDEO_BASE_S + VIDEO_PER_AUDIO_S x seconds of audio` and returns the
portrait's still frame in every frame. Each replica is a process of its own, as in production,
started by the services' own command line (`chatacter_common.service.cli.serve`, the function
`python -m vocalizr` runs) with its settings from the environment (`VOCALIZR_ENGINE=fixed-time`)
and these engines registered by name first:

    .venv/bin/python bench/stand_in.py vocalizr|visualizr [--host H] [--port P]

A speech call that names itself (CALL_HEADER) is noted in the replica's DATA_DIR/timeline.jsonl:
when it arrived, when its engine ran, when its answer started, all by perf_counter, which is
CLOCK_MONOTONIC here, one clock for every process on the machine. So a turn's time to first audio
splits into its parts across the processes.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from starlette.types import ASGIApp, Message, Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the packages, from any folder

from chatacter_common.service import cli
from visualizr.engines import ENGINES as VIDEO_ENGINES
from visualizr.engines import FramedPortrait
from visualizr.expressions import NEUTRAL_CUE, ExpressionCue
from visualizr.media import AUDIO_RATE
from visualizr.settings import Settings as VisualizrSettings
from vocalizr.audio import Clip
from vocalizr.engines import ENGINES as SPEECH_ENGINES
from vocalizr.engines import SpeechEngine
from vocalizr.settings import Settings as VocalizrSettings

ENGINE = "fixed-time"
# GPU-like costs: XTTS-v2 streams at RTF ~0.1 on a recent GPU; MuseTalk renders 25 fps video at
# roughly 100 fps, 0.25 s per second of video; each call has a fixed part (kernel launches, I/O).
SPEECH_BASE_S, SPEECH_PER_AUDIO_S = 0.05, 0.10
VIDEO_BASE_S, VIDEO_PER_AUDIO_S = 0.05, 0.30
CHARS_PER_AUDIO_S = 15.0  # speaking rate of the stand-in voice
SAMPLE_RATE = 16_000

CALL_HEADER = "x-scale-call"
CALL: ContextVar[str | None] = ContextVar("scale_call", default=None)  # the call being made
TIMELINE = "timeline.jsonl"


class Timeline:
    """A replica's notes, a line of JSON each, appended whole (its event loop and its worker
    both write)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def note(self, **fields: object) -> None:
        with self.path.open("a") as out:
            out.write(json.dumps(fields) + "\n")


class CallTimes:
    """ASGI middleware: for a call that names itself (CALL_HEADER), when it arrived and when its
    answer started; the id goes on in CALL, to the engine (the worker thread copies the context)."""

    def __init__(self, app: ASGIApp, timeline: Timeline) -> None:
        self.app = app
        self.timeline = timeline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", [])) if scope["type"] == "http" else {}
        call = headers.get(CALL_HEADER.encode(), b"").decode() or None
        if call is None:
            await self.app(scope, receive, send)
            return
        arrived = time.perf_counter()

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.timeline.note(call=call, arrived=arrived, answered=time.perf_counter())
            await send(message)

        token = CALL.set(call)
        try:
            await self.app(scope, receive, answer)
        finally:
            CALL.reset(token)


class FixedTimeSpeech(SpeechEngine):
    """Speech whose cost is wall time, as on a GPU: a sleep, then a tone of the text's length."""

    name = ENGINE
    sample_rate = SAMPLE_RATE
    device = "stand-in GPU (sleep)"
    languages = ("en",)

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline

    def load(self) -> None:
        return None

    def add_voice(self, voice_id: str, clip: Clip) -> None:
        return None

    def synthesize(
        self, text: str, voice_id: str, language: str, speed: float, emotion: str = "neutral"
    ) -> npt.NDArray[np.float32]:
        seconds = max(0.5, len(text) / CHARS_PER_AUDIO_S) / speed
        intended = SPEECH_BASE_S + SPEECH_PER_AUDIO_S * seconds
        started = time.perf_counter()
        time.sleep(intended)
        # Past `intended`: the wait for this process's GIL (and a core) once the sleep is over.
        self.timeline.note(
            call=CALL.get(), started=started, ended=time.perf_counter(), intended=intended
        )
        t = np.arange(int(seconds * SAMPLE_RATE), dtype=np.float32) / SAMPLE_RATE
        tone: npt.NDArray[np.float32] = (0.1 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
        return tone


class FixedTimeHead:
    """A talking head whose cost is wall time: a sleep, then the still portrait in every frame."""

    name = ENGINE
    device = "stand-in GPU (sleep)"

    def prepare(self, framed: FramedPortrait) -> Any:
        return framed.image

    def render(
        self,
        prepared: Any,
        audio: npt.NDArray[np.float32],
        fps: int,
        frames: int,
        cue: ExpressionCue = NEUTRAL_CUE,
    ) -> Iterator[npt.NDArray[np.uint8]]:
        time.sleep(VIDEO_BASE_S + VIDEO_PER_AUDIO_S * audio.size / AUDIO_RATE)
        for _ in range(frames):
            yield prepared


def register_engines() -> None:
    """The stand-ins, by name, in the services' own registries (as a plugin would add one)."""
    if ENGINE not in SPEECH_ENGINES:
        SPEECH_ENGINES.register(
            ENGINE, lambda settings: FixedTimeSpeech(Timeline(settings.data_dir / TIMELINE))
        )
    if ENGINE not in VIDEO_ENGINES:
        VIDEO_ENGINES.register(ENGINE, lambda settings: FixedTimeHead())


def main(argv: Sequence[str] | None = None) -> None:
    """`vocalizr|visualizr [--host H] [--port P]`: serve one replica until interrupted."""
    program, *rest = list(sys.argv[1:] if argv is None else argv) or [""]
    register_engines()
    if program == "vocalizr":
        from vocalizr.api import create_app as create_vocalizr

        def timed_vocalizr(settings: VocalizrSettings) -> ASGIApp:
            return CallTimes(create_vocalizr(settings), Timeline(settings.data_dir / TIMELINE))

        cli.serve(VocalizrSettings(), timed_vocalizr, rest, prog=program, description=__doc__)
    elif program == "visualizr":
        from visualizr.api import create_app as create_visualizr

        cli.serve(VisualizrSettings(), create_visualizr, rest, prog=program, description=__doc__)
    else:
        raise SystemExit("usage: stand_in.py vocalizr|visualizr [--host H] [--port P]")


if __name__ == "__main__":
    main()
