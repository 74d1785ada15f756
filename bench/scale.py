"""Turns with media per minute against the number of service replicas (1, 2, 4) behind a proxy.

The replicas run engines defined here whose cost is wall time, not CPU (a stand-in for a GPU):
speech sleeps `SPEECH_BASE_S + SPEECH_PER_AUDIO_S x seconds of audio` and returns a tone, the
talking head sleeps `VIDEO_BASE_S + VIDEO_PER_AUDIO_S x seconds of audio` and returns the
portrait's still frames (a tiny 128 px video). Each replica is a separate app instance of the real
service (`vocalizr.api.create_app`, `visualizr.api.create_app`) on its own loopback port, in a
thread of this process, with its own bounded queue and one worker, as one GPU would have. Debian's
haproxy (`balance leastconn`, health checks on `/readyz`, `option redispatch`, `retries`) sits in
front of each service's replicas; chattr's ChatService and its media fan-out talk to the proxy
only. Replicas of one service share one files folder on disk (the `local` store: each replica's
`DATA_DIR/files` is a link to it), so any replica serves what another made, as a bucket store
would let them.

For each N, `CONVERSATIONS_PER_REPLICA x N` conversations run turns back to back (a closed loop
that keeps every replica busy; the services' busy share is printed to show it); the turns per
minute are taken between the end of the first round and the last completion before the deadline.
Then, on the N = 4 stack: one conversation alone (its time to first audio), and turns arriving at
random (Poisson, seeded) at half of N = 4's measured rate (p95 time to first audio). Targets: 4
replicas >= 3.6 x the turns per minute of 1, no turn lost (a lost turn: errors, or a segment or
the joined reply without audio or video), p95 first audio at half load <= 1.2 x the single one's.

    .venv/bin/python bench/scale.py [--replicas 1 2 4] [--duration 90] [--balance leastconn]
        [--speech-concurrency N] [--video-concurrency N]   # chattr's bounds (default: see below)
    .venv/bin/python bench/scale.py --quick   # 1 and 2 replicas, seconds each: that it runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench.*`, from any folder

from bench.fanout import TurnResult, percentile, pipeline_turn, scrape
from bench.stack import load, quick_characters
from chattr.knowledge.embeddings import load_default_embedder
from chattr.media.clients import SpeechResult, VocalizrClient
from chattr.media.fanout import MediaFanout
from chattr.media.local_stack import free_port
from chattr.run.assembly import create_service
from chattr.run.serving import make_fanout
from chattr.settings import Settings as ChattrSettings
from chattr.testing.fake_llm import FakeLLMServer
from chattr.testing.threaded_server import ThreadedServer
from chattr.turn.service import ChatService
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
VIDEO_SIZE = 128  # visualizr's smallest: the CPU encoding stays small beside the sleeps
VIDEO_FPS = 12

FIRST_TOKEN_S = 0.150  # Groq-like, as bench/fanout.py
TOKENS_PER_S = 300.0
CONVERSATIONS_PER_REPLICA = 4  # enough that a replica's one worker never waits for work
# chattr's bounds on media calls in flight: a GPU replica runs one job and holds the next ready,
# so 2 per replica of the largest N; the same for every N (a deployment that autoscales its
# replicas keeps one chattr setting), the services' own queues take the rest.
CALLS_PER_REPLICA = 2
SINGLE_TURNS = 5
HALF_LOAD_SEED = 20261205
TARGET_SPEEDUP = 3.6  # 4 replicas against 1
TARGET_HALF_LOAD_FIRST_AUDIO = 1.2  # p95 at half load against one conversation's median
TURN_TIMEOUT_S = 180.0

QUESTION = "Tell me about the battle you are proudest of."
REPLY = (
    "Ah, you ask about Austerlitz, the finest day of my life as a soldier. "
    "The fog lay thick over the Pratzen Heights while the Russians and Austrians marched across "
    "my front, believing my right flank was weak. "
    "When the sun broke through the mist, Soult's divisions climbed the heights and cut their "
    "army in two."
)
QUICK_REPLY = "Ah, you ask about Austerlitz. It was the finest day of my life as a soldier."


# Each speech call chattr makes carries its id in this header; the replica notes, under that id,
# when the call arrived, when its engine ran and when it answered (a line of JSON per event in
# DATA_DIR/timeline.jsonl), so a turn's time to first audio splits into its parts. The times are
# perf_counter's: CLOCK_MONOTONIC, one clock for every process on the machine.
CALL_HEADER = "x-scale-call"
CALL: ContextVar[str | None] = ContextVar("scale_call", default=None)  # the call being served
TIMELINE = "timeline.jsonl"


class Timeline:
    """A replica's notes, a line each: written by its event loop and its worker, appended whole."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def note(self, **fields: object) -> None:
        with self.path.open("a") as out:
            out.write(json.dumps(fields) + "\n")


class CallTimes:
    """ASGI middleware: for a call that names itself (CALL_HEADER), when it arrived and when its
    answer started, and the id in CALL for the engine (the worker thread copies the context)."""

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
        # Past `intended`: the wait for this process's GIL (and the CPU) once the sleep is over.
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


@dataclass
class Service:
    """One service's replicas and the proxy address every caller uses."""

    name: str
    key: str
    proxy_port: int
    replicas: list[ThreadedServer]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    def counters(self) -> list[dict[str, float]]:
        return [scrape(r.url, self.key) for r in self.replicas]


def wait_ready(url: str, timeout_s: float = 120.0) -> None:
    """Poll `/readyz` until 200 (engine loaded); SystemExit with the answer otherwise."""
    deadline = time.monotonic() + timeout_s
    answer = "no answer"
    while time.monotonic() < deadline:
        try:
            reply = httpx.get(url + "/readyz", timeout=2)
            if reply.status_code == 200:
                return
            answer = f"{reply.status_code} {reply.text[:200]}"
        except httpx.TransportError as error:
            answer = repr(error)
        time.sleep(0.1)
    raise SystemExit(f"{url} not ready after {timeout_s:.0f} s: {answer}")


def shared_files(data_dir: Path, shared: Path) -> Path:
    """A replica's data folder whose `files` is the service's one shared folder."""
    data_dir.mkdir(parents=True)
    (data_dir / "files").symlink_to(shared, target_is_directory=True)
    return data_dir


@contextmanager
def replicas(work: Path, count: int, characters: Path) -> Iterator[tuple[Service, Service]]:
    """`count` replicas of vocalizr and of visualizr, each a separate app with one worker."""
    from visualizr.api import create_app as create_visualizr
    from vocalizr.api import create_app as create_vocalizr

    register_engines()
    speech = Service("vocalizr", secrets.token_urlsafe(16), free_port(), [])
    video = Service("visualizr", secrets.token_urlsafe(16), free_port(), [])
    speech_files, video_files = work / "vocalizr-files", work / "visualizr-videos"
    speech_files.mkdir()
    video_files.mkdir()
    with ExitStack() as stack:
        for index in range(count):
            speech_settings = VocalizrSettings(
                engine=ENGINE,
                data_dir=shared_files(work / f"vocalizr-{index}", speech_files),
                characters_dir=characters,
                public_url=speech.url,  # file URLs name the proxy: any replica serves them
                api_key=SecretStr(speech.key),
                workers=1,
                ui=False,
                stt_preload=False,
            )
            video_dir = work / f"visualizr-{index}"
            video_dir.mkdir()
            (video_dir / "videos").symlink_to(video_files, target_is_directory=True)
            video_settings = VisualizrSettings(
                engine=ENGINE,
                data_dir=video_dir,
                characters_dir=characters,
                public_url=video.url,
                api_key=SecretStr(video.key),
                vocalizr_url=speech.url,  # audio fetched through the proxy, from any replica
                vocalizr_api_key=SecretStr(speech.key),
                workers=1,
                ui=False,
                default_size=VIDEO_SIZE,
            )
            speech_app = CallTimes(
                create_vocalizr(speech_settings), Timeline(speech_settings.data_dir / TIMELINE)
            )
            for service, app in ((speech, speech_app), (video, create_visualizr(video_settings))):
                server = ThreadedServer(app).start()
                stack.callback(server.stop)
                service.replicas.append(server)
        for service in (speech, video):
            for server in service.replicas:
                wait_ready(server.url)
        yield speech, video


HAPROXY_DEFAULTS = """\
global
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 180s
    timeout server 180s
    timeout queue 60s
    # A replica that refuses the connection (dead, restarting): the next try goes elsewhere.
    option redispatch
    retries 2
"""


def haproxy_config(services: Sequence[Service], count: int, balance: str) -> str:
    """Each service's first `count` replicas behind a frontend on its proxy port."""
    parts = [HAPROXY_DEFAULTS]
    for service in services:
        parts.append(
            f"frontend {service.name}\n"
            f"    bind 127.0.0.1:{service.proxy_port}\n"
            f"    default_backend {service.name}_replicas\n\n"
            f"backend {service.name}_replicas\n"
            f"    balance {balance}\n"
            "    option httpchk GET /readyz\n"
            "    http-check expect status 200\n"
            "    default-server check inter 1s fall 2 rise 1\n"
        )
        for index, server in enumerate(service.replicas[:count]):
            parts.append(f"    server r{index} 127.0.0.1:{server.port}\n")
        parts.append("\n")
    return "".join(parts)


@contextmanager
def haproxy(work: Path, services: Sequence[Service], count: int, balance: str) -> Iterator[None]:
    """haproxy in the foreground as a child process, until the block ends."""
    config = work / f"haproxy-{count}.cfg"
    config.write_text(haproxy_config(services, count, balance))
    log_path = work / f"haproxy-{count}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            ["/usr/sbin/haproxy", "-db", "-f", str(config)], stdout=log_file, stderr=log_file
        )
        try:
            for service in services:
                wait_ready(service.url, timeout_s=20)
            yield
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
    if process.returncode not in (0, -15, 143):
        print(f"  haproxy exited with {process.returncode}: {log_path.read_text()[-2000:]}")


@dataclass
class SpeechCall:
    """One speech call of a turn as chattr made it, inside its slot (perf_counter)."""

    call: str
    text: str
    started: float
    ended: float


TURN_CALLS: ContextVar[list[SpeechCall] | None] = ContextVar("scale_turn_calls", default=None)


def time_speech_calls(client: VocalizrClient) -> None:
    """Name each speech call of this client (CALL_HEADER) and note it in its turn's list (the
    fan-out's tasks inherit the turn's context, TURN_CALLS)."""
    synthesize = client.synthesize

    async def named(text: str, *args: Any, **kwargs: Any) -> SpeechResult:
        call, calls = secrets.token_hex(8), TURN_CALLS.get()
        token = CALL.set(call)
        started = time.perf_counter()
        try:
            return await synthesize(text, *args, **kwargs)
        finally:
            CALL.reset(token)
            if calls is not None:
                calls.append(SpeechCall(call, text, started, time.perf_counter()))

    async def header(request: httpx.Request) -> None:
        call = CALL.get()
        if call is not None:
            request.headers[CALL_HEADER] = call

    setattr(client, "synthesize", named)  # noqa: B010 -- this client only
    client.http.event_hooks["request"].append(header)


@dataclass
class Finished:
    """A turn, when it ended (perf_counter) and its speech calls."""

    turn: TurnResult
    ended: float
    calls: list[SpeechCall]


async def one_turn(service: ChatService, llm: FakeLLMServer, session: str, reply: str) -> Finished:
    llm.script(reply)
    calls: list[SpeechCall] = []
    TURN_CALLS.set(calls)  # this task's context, and so its turn's fan-out tasks'
    try:
        turn = await asyncio.wait_for(pipeline_turn(service, session), TURN_TIMEOUT_S)
    except TimeoutError:
        turn = TurnResult(started=time.perf_counter() - TURN_TIMEOUT_S)
        turn.problem = f"no end after {TURN_TIMEOUT_S:.0f} s"
    return Finished(turn, time.perf_counter(), calls)


def read_timelines(work: Path) -> dict[str, dict[str, float]]:
    """Every replica's notes, merged by call id."""
    calls: dict[str, dict[str, float]] = {}
    for path in work.glob(f"vocalizr-*/{TIMELINE}"):
        for line in path.read_text().splitlines():
            note = json.loads(line)
            call = note.pop("call")
            if call is not None:
                calls.setdefault(call, {}).update(note)
    return calls


# The parts of a turn's time to first audio, in order: what each one ends with.
FIRST_AUDIO_PARTS = (
    ("before the LLM (memory, knowledge, prompt)", "prepared"),
    ("LLM's first text", "first_text"),
    ("first clause complete, its emotion", "added"),
    ("waiting for a speech slot (chattr)", "call"),
    ("to the replica (client, haproxy)", "arrived"),
    ("in the replica before its engine", "engine"),
    ("engine: the sleep asked", "asked"),
    ("engine: past the sleep (GIL, CPU)", "slept"),
    ("WAV, file, answer (replica)", "answered"),
    ("back to chattr (haproxy, client)", "returned"),
    ("into the turn's state", "first_audio"),
)


def first_audio_marks(
    finished: Finished, timelines: dict[str, dict[str, float]]
) -> list[float] | None:
    """The ends of the parts of FIRST_AUDIO_PARTS, in seconds from the turn's start; None where
    the turn has no first audio or its call was not noted (a retry goes on a client of its own)."""
    turn = finished.turn
    if turn.first_audio is None or turn.state is None or not turn.state.segments:
        return None
    text = turn.state.segments[0].text
    call = next((c for c in finished.calls if c.text == text), None)
    added = turn.added.get(text)
    if call is None or added is None:
        return None
    noted = timelines.get(call.call, {})
    if not {"arrived", "answered", "started", "ended"} <= noted.keys():
        return None
    timings = turn.state.timings
    prepared = timings.get("prepare_s", 0.0)

    def since(at: float) -> float:
        return at - turn.started

    return [
        prepared,
        timings.get("first_text_s", prepared),
        added,
        since(call.started),
        since(noted["arrived"]),
        since(noted["started"]),
        since(noted["started"] + noted["intended"]),
        since(noted["ended"]),
        since(noted["answered"]),
        since(call.ended),
        turn.first_audio,
    ]


def first_audio_parts(finished: Sequence[Finished], work: Path) -> str:
    """Where the time to first audio went: each part's p50 and p95, and its mean over the
    slowest tenth of the turns (what the p95 is made of)."""
    timelines = read_timelines(work)
    marks = [m for m in (first_audio_marks(f, timelines) for f in finished) if m is not None]
    if not marks:
        return "    no turn with its first audio's call noted"
    ends = np.asarray(marks)
    parts = np.diff(ends, axis=1, prepend=0.0)
    slowest = parts[ends[:, -1] >= np.percentile(ends[:, -1], 90)]
    lines = [
        f"    {'part of the time to first audio (s)':44s}   p50    p95  slowest tenth "
        f"({len(marks)} of {len(finished)} turns)"
    ]
    for index, (label, _) in enumerate(FIRST_AUDIO_PARTS):
        column = parts[:, index]
        lines.append(
            f"    {label:44s} {np.percentile(column, 50):5.3f}  {np.percentile(column, 95):5.3f}"
            f"  {slowest[:, index].mean():5.3f}"
        )
    total = ends[:, -1]
    lines.append(
        f"    {'first audio':44s} {np.percentile(total, 50):5.3f}  {np.percentile(total, 95):5.3f}"
        f"  {total[total >= np.percentile(total, 90)].mean():5.3f}"
    )
    return "\n".join(lines)


class LoopLag:
    """How late the event loop wakes a task asleep for `interval_s`: chattr's own delay on
    every step of a turn (another task holding the loop, or the GIL held by another thread)."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _probe(self) -> None:
        while True:
            asleep = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.lags.append(time.perf_counter() - asleep - self.interval_s)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._probe())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()

    def line(self) -> str:
        lags = 1000 * np.asarray(self.lags or [math.nan])
        return (
            f"chattr's event loop late by p50 {np.percentile(lags, 50):.1f} ms, p95 "
            f"{np.percentile(lags, 95):.1f} ms, max {lags.max():.1f} ms"
        )


def lost(finished: Sequence[Finished]) -> list[str]:
    return [f.turn.problem for f in finished if not f.turn.complete]


@dataclass
class Throughput:
    replicas: int
    conversations: int
    turns: int
    per_minute: float
    first_audio: list[float]
    lost: list[str]
    busy: str


async def closed_loop(
    service: ChatService,
    llm: FakeLLMServer,
    conversations: int,
    duration_s: float,
    reply: str,
    label: str,
) -> tuple[list[Finished], float, float]:
    """`conversations` loops of turns until the deadline; (turns, start, deadline)."""
    started = time.perf_counter()
    deadline = started + duration_s
    finished: list[Finished] = []

    async def conversation(index: int) -> None:
        turn = 0
        while time.perf_counter() < deadline:
            finished.append(await one_turn(service, llm, f"{label}-{index}-{turn}", reply))
            turn += 1

    await asyncio.gather(*(conversation(i) for i in range(conversations)))
    return finished, started, deadline


def steady_rate(
    finished: Sequence[Finished], conversations: int, started: float, deadline: float
) -> float:
    """Turns per minute from the first round's end to the deadline: the least-squares slope of
    completions against time. Whole turns counted in a window would round one replica's rate (a
    completion every few seconds) by 10 %; the two end points alone swing with how completions
    bunch. A run too short for that (--quick) counts all its turns over the whole run."""
    ends = sorted(f.ended for f in finished)
    window = [t for t in ends[conversations - 1 :] if t <= deadline]
    if len(window) < 3:
        return 60.0 * len(ends) / (ends[-1] - started) if ends else math.nan
    slope = np.polyfit(np.asarray(window), np.arange(len(window), dtype=float), 1)[0]
    return 60.0 * float(slope)


def cpu_line(cpu_started: float, wall: float, turns: int) -> str:
    """The CPU this process (chattr, the replicas, the fake LLM) spent: the engines' sleeps cost
    none, so this is the orchestration's own cost, and on two shared cores a source of delay."""
    cpu = time.process_time() - cpu_started
    return f"this process {cpu / wall:.2f} cores, {1000 * cpu / max(turns, 1):.0f} ms CPU per turn"


def busy_line(
    services: Sequence[Service], count: int, before: list[list[dict[str, float]]], wall: float
) -> str:
    """Each service's jobs per replica and the share of the run its replicas were working."""
    parts = []
    for service, counters in zip(services, before, strict=True):
        after = service.counters()
        work = "synthesis" if service.name == "vocalizr" else "render"
        jobs, shares = [], []
        for old, new in zip(counters[:count], after[:count], strict=True):
            name = f"{service.name}_{work}_seconds"
            jobs.append(round(new.get(f"{name}_count", 0) - old.get(f"{name}_count", 0)))
            shares.append((new.get(f"{name}_sum", 0) - old.get(f"{name}_sum", 0)) / wall)
        parts.append(
            f"{service.name} jobs per replica {jobs}, busy "
            + " ".join(f"{share:.0%}" for share in shares)
        )
    return "; ".join(parts)


async def measure_replicas(
    service: ChatService,
    llm: FakeLLMServer,
    services: Sequence[Service],
    count: int,
    args: argparse.Namespace,
    reply: str,
) -> Throughput:
    conversations = CONVERSATIONS_PER_REPLICA * count
    before = [s.counters() for s in services]
    cpu = time.process_time()
    finished, started, deadline = await closed_loop(
        service, llm, conversations, args.duration, reply, f"n{count}"
    )
    wall = time.perf_counter() - started
    return Throughput(
        replicas=count,
        conversations=conversations,
        turns=len(finished),
        per_minute=steady_rate(finished, conversations, started, deadline),
        first_audio=[f.turn.first_audio for f in finished if f.turn.first_audio is not None],
        lost=lost(finished),
        busy=busy_line(services, count, before, wall) + "; " + cpu_line(cpu, wall, len(finished)),
    )


async def half_load(
    service: ChatService, llm: FakeLLMServer, rate_per_s: float, duration_s: float, reply: str
) -> list[Finished]:
    """Turns arriving at random (Poisson, seeded) at `rate_per_s` for `duration_s`."""
    arrivals = random.Random(HALF_LOAD_SEED)
    tasks: list[asyncio.Task[Finished]] = []
    started = time.perf_counter()
    at = 0.0  # the first turn at once, then exponential gaps
    while at < duration_s:
        await asyncio.sleep(max(0.0, started + at - time.perf_counter()))
        tasks.append(asyncio.create_task(one_turn(service, llm, f"half-{len(tasks)}", reply)))
        at += arrivals.expovariate(rate_per_s)
    return list(await asyncio.gather(*tasks))


def fanout_for(settings: ChattrSettings, speech: Service, video: Service) -> MediaFanout:
    fanout = make_fanout(
        settings, speech.url, video.url, vocalizr_key=speech.key, visualizr_key=video.key
    )
    assert fanout.vocalizr is not None
    time_speech_calls(fanout.vocalizr)
    return fanout


async def run_benchmark(
    args: argparse.Namespace,
    settings: ChattrSettings,
    service: ChatService,
    llm: FakeLLMServer,
    speech: Service,
    video: Service,
    work: Path,
    reply: str,
) -> int:
    results: list[Throughput] = []
    largest = max(args.replicas)
    for count in args.replicas:
        with haproxy(work, (speech, video), count, args.balance):
            service.media = fanout = fanout_for(settings, speech, video)
            try:
                print(
                    f"\n{count} replica(s) of each, {CONVERSATIONS_PER_REPLICA * count} "
                    f"conversations, {args.duration:.0f} s; {load()}",
                    flush=True,
                )
                result = await measure_replicas(service, llm, (speech, video), count, args, reply)
            finally:
                await fanout.aclose()
        results.append(result)
        audio = result.first_audio or [math.nan]
        print(
            f"  {result.turns} turns, {result.per_minute:.1f} turns/min (steady), "
            f"{len(result.lost)} lost; first audio p50 {percentile(audio, 50):.2f} s "
            f"p95 {percentile(audio, 95):.2f} s\n  {result.busy}",
            flush=True,
        )
        for problem in result.lost[:5]:
            print(f"    lost: {problem}")

    with haproxy(work, (speech, video), largest, args.balance):
        service.media = fanout = fanout_for(settings, speech, video)
        try:
            print(
                f"\none conversation alone, {largest} replica(s): {args.single} turns", flush=True
            )
            with LoopLag() as single_lag:
                single = [
                    await one_turn(service, llm, f"single-{i}", reply) for i in range(args.single)
                ]
            single_audio = [f.turn.first_audio for f in single if f.turn.first_audio is not None]
            single_p50 = statistics.median(single_audio) if single_audio else math.nan
            print(
                f"  first audio p50 {single_p50:.2f} s p95 {percentile(single_audio, 95):.2f} s "
                f"(of {len(single_audio)}), "
                f"{len(lost(single))} lost; {single_lag.line()}\n"
                f"{first_audio_parts(single, work)}",
                flush=True,
            )
            capacity = results[-1].per_minute / 60.0
            rate = capacity / 2
            print(
                f"\nhalf load: {rate * 60:.1f} turns/min (half of {largest} replicas' "
                f"{capacity * 60:.1f}), Poisson arrivals for {args.half_duration:.0f} s; {load()}",
                flush=True,
            )
            cpu, wall = time.process_time(), time.perf_counter()
            with LoopLag() as half_lag:
                half = await half_load(service, llm, rate, args.half_duration, reply)
            half_cpu = cpu_line(cpu, time.perf_counter() - wall, len(half))
        finally:
            await fanout.aclose()
    half_audio = [f.turn.first_audio for f in half if f.turn.first_audio is not None] or [math.nan]
    half_p95 = percentile(half_audio, 95)
    print(
        f"  {len(half)} turns, {len(lost(half))} lost; first audio p50 "
        f"{percentile(half_audio, 50):.2f} s p95 {half_p95:.2f} s; {half_cpu}\n  "
        f"{half_lag.line()}\n{first_audio_parts(half, work)}"
    )

    print("\nreplicas  conversations  turns  turns/min  speedup  lost")
    base = results[0].per_minute
    for result in results:
        print(
            f"  {result.replicas:5d}  {result.conversations:13d}  {result.turns:5d}  "
            f"{result.per_minute:9.1f}  {result.per_minute / base:6.2f}x  {len(result.lost):4d}"
        )
    all_lost = sum(len(r.lost) for r in results) + len(lost(single)) + len(lost(half))
    speedup = results[-1].per_minute / base
    half_ratio = half_p95 / single_p50
    verdict = {True: "met", False: "MISSED"}
    print(
        f"{results[-1].replicas} replicas / {results[0].replicas}: {speedup:.2f}x turns per minute "
        f"(target >= {TARGET_SPEEDUP} for 4 / 1: {verdict[speedup >= TARGET_SPEEDUP]})\n"
        f"first audio at half load p95 / alone p50: {half_p95:.2f} / {single_p50:.2f} s = "
        f"{half_ratio:.2f}x (target <= {TARGET_HALF_LOAD_FIRST_AUDIO}: "
        f"{verdict[half_ratio <= TARGET_HALF_LOAD_FIRST_AUDIO]})\n"
        f"lost turns: {all_lost} ({'none lost' if not all_lost else 'TURNS LOST'})\n{load()}"
    )
    return 1 if all_lost else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--duration", type=float, default=90.0, help="seconds of turns per N")
    parser.add_argument("--half-duration", type=float, default=90.0, help="seconds at half load")
    parser.add_argument("--single", type=int, default=SINGLE_TURNS, help="turns alone")
    parser.add_argument("--balance", default="leastconn", help="haproxy's balance algorithm")
    parser.add_argument("--speech-concurrency", type=int, default=None)
    parser.add_argument("--video-concurrency", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="1 and 2 replicas, seconds each")
    args = parser.parse_args(argv)
    reply = REPLY
    if args.quick:
        args.replicas, args.duration, args.half_duration, args.single = [1, 2], 8.0, 6.0, 2
        reply = QUICK_REPLY
    if shutil.which("/usr/sbin/haproxy") is None:
        print("this bench needs haproxy (Debian's package: /usr/sbin/haproxy)")
        return 1
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    bound = CALLS_PER_REPLICA * max(args.replicas)
    speech_bound = args.speech_concurrency or bound
    video_bound = args.video_concurrency or bound
    print(
        f"scale benchmark; {load()}\n"
        f"engines: speech {SPEECH_BASE_S} + {SPEECH_PER_AUDIO_S} s per audio s, video "
        f"{VIDEO_BASE_S} + {VIDEO_PER_AUDIO_S} s per audio s (sleeps), {VIDEO_SIZE} px "
        f"{VIDEO_FPS} fps; haproxy balance {args.balance}; chattr speech_concurrency "
        f"{speech_bound}, video_concurrency {video_bound}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="chattr-bench-scale-") as tmp:
        work = Path(tmp)
        characters = quick_characters(work)
        llm = FakeLLMServer(first_token_s=FIRST_TOKEN_S, tokens_per_s=TOKENS_PER_S).start()
        settings = ChattrSettings(
            llm_base_url=llm.url,
            characters_dir=characters,
            data_dir=work / "chattr",
            redis_url=None,
            speech_concurrency=speech_bound,
            video_concurrency=video_bound,
            video_fps=VIDEO_FPS,
        )
        service = create_service(settings, load_embedder=load_default_embedder)
        try:
            assert service.retriever is not None
            started = time.perf_counter()
            with replicas(work, max(args.replicas), characters) as (speech, video):
                service.retriever.wait(180)
                print(
                    f"{max(args.replicas)} replicas of each and the knowledge ready in "
                    f"{time.perf_counter() - started:.1f} s",
                    flush=True,
                )
                return asyncio.run(
                    run_benchmark(args, settings, service, llm, speech, video, work, reply)
                )
        finally:
            if service.retriever is not None:
                service.retriever.close()
            llm.stop()


if __name__ == "__main__":
    raise SystemExit(main())
