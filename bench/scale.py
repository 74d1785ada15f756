"""Turns with media per minute against the number of service replicas (1, 2, 4) behind a proxy.

Every program is a process of its own, as in production: each vocalizr and visualizr replica is
started by the service's own command line with an engine whose cost is wall time, not CPU (a
stand-in for a GPU, bench/stand_in.py: speech sleeps `SPEECH_BASE_S + SPEECH_PER_AUDIO_S x
seconds of audio`, the talking head `VIDEO_BASE_S + VIDEO_PER_AUDIO_S x seconds of audio` and
returns the portrait's still frames, a tiny 128 px video), with its own bounded queue and one
worker, as one GPU would have; the fake LLM streams from its own process, as a hosted LLM would.
Debian's haproxy (`balance leastconn`, health checks on `/readyz`, `option redispatch`,
`retries`) sits in front of each service's replicas; chattr (this process: its ChatService and
media fan-out) talks to the proxy only. Replicas of one service share one files folder on disk
(the `local` store: each replica's `DATA_DIR/files` is a link to it), so any replica serves what
another made, as a bucket store would let them.

For each N, `CONVERSATIONS_PER_REPLICA x N` conversations run turns back to back (a closed loop
that keeps every replica busy; the services' busy share is printed to show it); the turns per
minute are taken between the end of the first round and the last completion before the deadline.
Then, on the N = 4 stack: one conversation alone (its time to first audio), and turns arriving at
random (Poisson, seeded) at half of N = 4's measured rate (p95 time to first audio). Targets: 4
replicas >= 3.6 x the turns per minute of 1, no turn lost (a lost turn: errors, or a segment or
the joined reply without audio or video), p95 first audio at half load <= 1.2 x the single one's.
Where the first audio's time went is printed part by part, across the processes (each speech call
carries an id that its replica notes, bench/stand_in.py), with the CPU each program used.

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
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench.*`, from any folder

from bench.fanout import TurnResult, percentile, pipeline_turn, scrape
from bench.stack import load, quick_characters
from bench.stand_in import (
    CALL,
    CALL_HEADER,
    ENGINE,
    SPEECH_BASE_S,
    SPEECH_PER_AUDIO_S,
    TIMELINE,
    VIDEO_BASE_S,
    VIDEO_PER_AUDIO_S,
)
from chattr.knowledge.embeddings import load_default_embedder
from chattr.media.clients import SpeechResult, VocalizrClient
from chattr.media.fanout import MediaFanout
from chattr.media.local_stack import die_with_parent, free_port, set_variables
from chattr.run.assembly import create_service
from chattr.run.serving import make_fanout
from chattr.settings import Settings as ChattrSettings
from chattr.turn.emotions import EmotionClassifier
from chattr.turn.service import ChatService

STAND_IN = Path(__file__).resolve().parent / "stand_in.py"
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


@dataclass
class Child:
    """A program of the stack as a process of its own, its output in a log file; it gets SIGTERM
    should this process die first."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls, work: Path, name: str, command: list[str], env: dict[str, str], port: int
    ) -> Child:
        log = work / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                env={**set_variables(), **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C here is for this process to pass on
                preexec_fn=die_with_parent,
            )
        return cls(name, port, process, log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        """CPU seconds the process has used so far (user and system)."""
        try:
            times = psutil.Process(self.process.pid).cpu_times()
        except psutil.NoSuchProcess:
            return math.nan
        return float(times.user + times.system)

    def wait_ready(
        self, path: str = "/readyz", timeout_s: float = 120.0, url: str | None = None
    ) -> None:
        """Poll `path` (at `url`, default its own) until 200 (a service: engine loaded);
        SystemExit saying why not, with the end of its log, if the process ends or time runs
        out."""
        url = url or self.url
        deadline = time.monotonic() + timeout_s
        answer = "no answer"
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                reply = httpx.get(url + path, timeout=2)
                if reply.status_code == 200:
                    return
                answer = f"{reply.status_code} {reply.text[:200]}"
            except httpx.TransportError as error:
                answer = repr(error)
            time.sleep(0.1)
        ended = self.process.poll()
        state = f"exited with {ended}" if ended is not None else f"{answer} after {timeout_s:.0f} s"
        tail = self.log.read_text(errors="replace")[-2000:]
        raise SystemExit(f"{self.name} not ready at {url}: {state}\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextmanager
def child(
    work: Path, name: str, command: list[str], env: dict[str, str], port: int
) -> Iterator[Child]:
    """A Child until the block ends."""
    started = Child.start(work, name, command, env, port)
    try:
        yield started
    finally:
        started.stop()


@dataclass
class Service:
    """One service's replicas and the proxy address every caller uses."""

    name: str
    key: str
    proxy_port: int
    replicas: list[Child] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    def counters(self) -> list[dict[str, float]]:
        return [scrape(r.url, self.key) for r in self.replicas]


def shared_files(data_dir: Path, shared: Path, name: str) -> Path:
    """A replica's data folder whose `name` folder is the service's one shared folder."""
    data_dir.mkdir(parents=True)
    (data_dir / name).symlink_to(shared, target_is_directory=True)
    return data_dir


@contextmanager
def replicas(work: Path, count: int, characters: Path) -> Iterator[tuple[Service, Service]]:
    """`count` replicas of vocalizr and of visualizr, each a process with one worker."""
    speech = Service("vocalizr", secrets.token_urlsafe(16), free_port())
    video = Service("visualizr", secrets.token_urlsafe(16), free_port())
    speech_files, video_files = work / "vocalizr-files", work / "visualizr-videos"
    speech_files.mkdir()
    video_files.mkdir()
    with ExitStack() as stack:
        for index in range(count):
            speech_env = {
                "VOCALIZR_ENGINE": ENGINE,
                "VOCALIZR_DATA_DIR": str(
                    shared_files(work / f"vocalizr-{index}", speech_files, "files")
                ),
                "VOCALIZR_CHARACTERS_DIR": str(characters),
                # File URLs name the proxy: any replica serves them.
                "VOCALIZR_PUBLIC_URL": speech.url,
                "VOCALIZR_API_KEY": speech.key,
                "VOCALIZR_WORKERS": "1",
                "VOCALIZR_UI": "false",
                "VOCALIZR_STT_PRELOAD": "false",
            }
            video_env = {
                "VISUALIZR_ENGINE": ENGINE,
                "VISUALIZR_DATA_DIR": str(
                    shared_files(work / f"visualizr-{index}", video_files, "videos")
                ),
                "VISUALIZR_CHARACTERS_DIR": str(characters),
                "VISUALIZR_PUBLIC_URL": video.url,
                "VISUALIZR_API_KEY": video.key,
                # The audio is fetched through the proxy, from any replica.
                "VISUALIZR_VOCALIZR_URL": speech.url,
                "VISUALIZR_VOCALIZR_API_KEY": speech.key,
                "VISUALIZR_WORKERS": "1",
                "VISUALIZR_UI": "false",
                "VISUALIZR_DEFAULT_SIZE": str(VIDEO_SIZE),
            }
            for service, env in ((speech, speech_env), (video, video_env)):
                name, port = f"{service.name}-{index}", free_port()
                command = [sys.executable, str(STAND_IN), service.name]
                command += ["--host", "127.0.0.1", "--port", str(port)]
                service.replicas.append(stack.enter_context(child(work, name, command, env, port)))
        for service in (speech, video):
            for replica in service.replicas:
                replica.wait_ready()
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
def haproxy(work: Path, services: Sequence[Service], count: int, balance: str) -> Iterator[Child]:
    """haproxy in the foreground as a child process, until the block ends."""
    config = work / f"haproxy-{count}.cfg"
    config.write_text(haproxy_config(services, count, balance))
    command = ["/usr/sbin/haproxy", "-db", "-f", str(config)]
    with child(work, f"haproxy-{count}", command, {}, services[0].proxy_port) as proxy:
        for service in services:
            proxy.wait_ready(timeout_s=20, url=service.url)
        yield proxy
    if proxy.process.returncode not in (0, -15, 143):
        print(f"  haproxy exited with {proxy.process.returncode}: {proxy.log.read_text()[-2000:]}")


@contextmanager
def fake_llm(work: Path, reply: str) -> Iterator[Child]:
    """The fake LLM in a process of its own, as a hosted one is: answering `reply` every time."""
    port = free_port()
    command = [sys.executable, "-m", "chattr.testing.fake_llm", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--first-token-ms", str(1000 * FIRST_TOKEN_S)]
    command += ["--tokens-per-s", str(TOKENS_PER_S), "--reply", reply]
    with child(work, "fake-llm", command, {}, port) as llm:
        llm.wait_ready("/openapi.json", timeout_s=60)
        yield llm


@dataclass
class Span:
    """A step of a turn, as chattr ran it (perf_counter); `call`: the id its replica notes."""

    text: str
    started: float
    ended: float
    call: str = ""


@dataclass
class TurnNotes:
    """A turn's speech calls (inside their slots) and emotion guesses, by their sentences."""

    speech: list[Span] = field(default_factory=list)
    emotions: list[Span] = field(default_factory=list)

    def first(self, steps: list[Span], text: str) -> Span | None:
        return next((step for step in steps if step.text == text), None)


# Set in each turn's task: the fan-out's tasks and the worker threads inherit it.
TURN_NOTES: ContextVar[TurnNotes | None] = ContextVar("scale_turn_notes", default=None)


def time_speech_calls(client: VocalizrClient) -> None:
    """Name each speech call of this client (CALL_HEADER) and note it in its turn's notes."""
    synthesize = client.synthesize

    async def named(text: str, *args: Any, **kwargs: Any) -> SpeechResult:
        call, notes = secrets.token_hex(8), TURN_NOTES.get()
        token = CALL.set(call)
        started = time.perf_counter()
        try:
            return await synthesize(text, *args, **kwargs)
        finally:
            CALL.reset(token)
            if notes is not None:
                notes.speech.append(Span(text, started, time.perf_counter(), call))

    async def header(request: httpx.Request) -> None:
        call = CALL.get()
        if call is not None:
            request.headers[CALL_HEADER] = call

    setattr(client, "synthesize", named)  # noqa: B010 -- this client only
    client.http.event_hooks["request"].append(header)


def time_emotions(classifier: EmotionClassifier) -> None:
    """Note each guess of this classifier (MiniLM, behind the embedder's one lock) in its turn's
    notes."""
    label = classifier.label

    def timed(sentence: str) -> str | None:
        started = time.perf_counter()
        try:
            return label(sentence)
        finally:
            notes = TURN_NOTES.get()
            if notes is not None:
                notes.emotions.append(Span(sentence, started, time.perf_counter()))

    setattr(classifier, "label", timed)  # noqa: B010 -- this classifier only


@dataclass
class Finished:
    """A turn, when it ended (perf_counter) and what it noted."""

    turn: TurnResult
    ended: float
    notes: TurnNotes


async def one_turn(service: ChatService, session: str) -> Finished:
    notes = TurnNotes()
    TURN_NOTES.set(notes)  # this task's context, and so its turn's fan-out tasks' and threads'
    try:
        turn = await asyncio.wait_for(pipeline_turn(service, session), TURN_TIMEOUT_S)
    except TimeoutError:
        turn = TurnResult(started=time.perf_counter() - TURN_TIMEOUT_S)
        turn.problem = f"no end after {TURN_TIMEOUT_S:.0f} s"
    return Finished(turn, time.perf_counter(), notes)


def read_timelines(work: Path) -> dict[str, dict[str, float]]:
    """Every replica's notes, merged by call id, with `busy`: 1 where the call arrived while its
    replica's engine ran another call (it queued behind it), else 0."""
    calls: dict[str, dict[str, float]] = {}
    for replica, path in enumerate(sorted(work.glob(f"vocalizr-*/{TIMELINE}"))):
        for line in path.read_text().splitlines():
            note = json.loads(line)
            call = note.pop("call")
            if call is not None:
                calls.setdefault(call, {"replica": replica}).update(note)
    runs: dict[float, list[tuple[float, float]]] = {}
    for noted in calls.values():
        if "started" in noted:
            runs.setdefault(noted["replica"], []).append((noted["started"], noted["ended"]))
    for noted in calls.values():
        if "arrived" in noted:
            arrived = noted["arrived"]
            busy = any(s < arrived < e for s, e in runs.get(noted["replica"], []))
            noted["busy"] = float(busy)
    return calls


# The parts of a turn's time to first audio, in order: what each one ends with.
FIRST_AUDIO_PARTS = (
    ("before the LLM (memory, knowledge, prompt)", "prepared"),
    ("LLM's first text", "first_text"),
    ("rest of the first clause (LLM)", "clause"),
    ("its emotion (MiniLM, one lock)", "added"),
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
) -> tuple[list[float], bool] | None:
    """The ends of the parts of FIRST_AUDIO_PARTS, in seconds from the turn's start, and whether
    the call found its replica busy; None where the turn has no first audio or its call was not
    noted (a retry goes on a client of its own)."""
    turn = finished.turn
    if turn.first_audio is None or turn.state is None or not turn.state.segments:
        return None
    text = turn.state.segments[0].text
    call = finished.notes.first(finished.notes.speech, text)
    added = turn.added.get(text)
    if call is None or added is None:
        return None
    emotion = finished.notes.first(finished.notes.emotions, text)
    noted = timelines.get(call.call, {})
    if not {"arrived", "answered", "started", "ended"} <= noted.keys():
        return None
    timings = turn.state.timings
    prepared = timings.get("prepare_s", 0.0)

    def since(at: float) -> float:
        return at - turn.started

    marks = [
        prepared,
        timings.get("first_text_s", prepared),
        since(emotion.started) if emotion is not None else added,
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
    return marks, bool(noted.get("busy"))


def first_audio_parts(finished: Sequence[Finished], work: Path) -> str:
    """Where the time to first audio went: each part's p50 and p95, and its mean over the
    slowest tenth of the turns (what the p95 is made of)."""
    timelines = read_timelines(work)
    noted = [m for m in (first_audio_marks(f, timelines) for f in finished) if m is not None]
    if not noted:
        return "    no turn with its first audio's call noted"
    ends = np.asarray([marks for marks, _ in noted])
    busy = np.asarray([found_busy for _, found_busy in noted])
    parts = np.diff(ends, axis=1, prepend=0.0)
    tail = ends[:, -1] >= np.percentile(ends[:, -1], 90)
    slowest = parts[tail]
    lines = [
        f"    {'part of the time to first audio (s)':44s}   p50    p95  slowest tenth "
        f"({len(noted)} of {len(finished)} turns)"
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
        f"  {total[tail].mean():5.3f}"
    )
    lines.append(
        f"    first clauses that found their replica's engine busy with another call: "
        f"{busy.sum()} of {len(busy)} ({busy[tail].sum()} of the slowest {tail.sum()})"
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
    service: ChatService, conversations: int, duration_s: float, label: str
) -> tuple[list[Finished], float, float]:
    """`conversations` loops of turns until the deadline; (turns, start, deadline)."""
    started = time.perf_counter()
    deadline = started + duration_s
    finished: list[Finished] = []

    async def conversation(index: int) -> None:
        turn = 0
        while time.perf_counter() < deadline:
            finished.append(await one_turn(service, f"{label}-{index}-{turn}"))
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


class CpuUse:
    """The CPU each program spent from now until `line`: the engines' sleeps cost none, so this
    is the orchestration's own cost, and on two shared cores a source of delay."""

    def __init__(self, programs: dict[str, list[Child]]) -> None:
        self.programs = programs
        self.chattr = time.process_time()  # this process: chattr, and the turns it is asked
        self.before = {name: sum(c.cpu_s() for c in group) for name, group in programs.items()}
        self.started = time.perf_counter()

    def line(self, turns: int) -> str:
        wall = time.perf_counter() - self.started
        chattr = time.process_time() - self.chattr
        used = [f"chattr {chattr / wall:.2f}"] + [
            f"{name} {(sum(c.cpu_s() for c in group) - self.before[name]) / wall:.2f}"
            for name, group in self.programs.items()
        ]
        return (
            f"CPU in cores: {', '.join(used)}; chattr {1000 * chattr / max(turns, 1):.0f} ms "
            "per turn"
        )


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


async def measure_replicas(bench: Bench, proxy: Child, count: int) -> Throughput:
    conversations = CONVERSATIONS_PER_REPLICA * count
    services = (bench.speech, bench.video)
    before = [s.counters() for s in services]
    cpu = CpuUse(bench.programs(proxy))
    finished, started, deadline = await closed_loop(
        bench.service, conversations, bench.args.duration, f"n{count}"
    )
    wall = time.perf_counter() - started
    return Throughput(
        replicas=count,
        conversations=conversations,
        turns=len(finished),
        per_minute=steady_rate(finished, conversations, started, deadline),
        first_audio=[f.turn.first_audio for f in finished if f.turn.first_audio is not None],
        lost=lost(finished),
        busy=busy_line(services, count, before, wall) + "\n  " + cpu.line(len(finished)),
    )


async def half_load(service: ChatService, rate_per_s: float, duration_s: float) -> list[Finished]:
    """Turns arriving at random (Poisson, seeded) at `rate_per_s` for `duration_s`."""
    arrivals = random.Random(HALF_LOAD_SEED)
    tasks: list[asyncio.Task[Finished]] = []
    started = time.perf_counter()
    at = 0.0  # the first turn at once, then exponential gaps
    while at < duration_s:
        await asyncio.sleep(max(0.0, started + at - time.perf_counter()))
        tasks.append(asyncio.create_task(one_turn(service, f"half-{len(tasks)}")))
        at += arrivals.expovariate(rate_per_s)
    return list(await asyncio.gather(*tasks))


@dataclass
class Bench:
    """chattr, the programs it talks to, and what was asked of the run."""

    args: argparse.Namespace
    settings: ChattrSettings
    service: ChatService
    llm: Child
    speech: Service
    video: Service
    work: Path

    def programs(self, proxy: Child) -> dict[str, list[Child]]:
        """The processes besides chattr, by program."""
        return {
            "vocalizr": self.speech.replicas,
            "visualizr": self.video.replicas,
            "haproxy": [proxy],
            "fake LLM": [self.llm],
        }

    @contextmanager
    def behind(self, count: int) -> Iterator[Child]:
        """haproxy in front of `count` replicas of each service (its process yielded)."""
        with haproxy(self.work, (self.speech, self.video), count, self.args.balance) as proxy:
            yield proxy

    def fanout(self) -> MediaFanout:
        """A fan-out of chattr's, over the proxy, its speech calls noted (closed by the caller)."""
        fanout = make_fanout(
            self.settings,
            self.speech.url,
            self.video.url,
            vocalizr_key=self.speech.key,
            visualizr_key=self.video.key,
        )
        assert fanout.vocalizr is not None
        time_speech_calls(fanout.vocalizr)
        self.service.media = fanout
        return fanout


async def run_benchmark(bench: Bench) -> int:
    args, service, work = bench.args, bench.service, bench.work
    results: list[Throughput] = []
    largest = max(args.replicas)
    for count in args.replicas:
        with bench.behind(count) as proxy:
            fanout = bench.fanout()
            try:
                print(
                    f"\n{count} replica(s) of each, {CONVERSATIONS_PER_REPLICA * count} "
                    f"conversations, {args.duration:.0f} s; {load()}",
                    flush=True,
                )
                result = await measure_replicas(bench, proxy, count)
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

    with bench.behind(largest) as proxy:
        fanout = bench.fanout()
        try:
            print(
                f"\none conversation alone, {largest} replica(s): {args.single} turns", flush=True
            )
            with LoopLag() as single_lag:
                single = [await one_turn(service, f"single-{i}") for i in range(args.single)]
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
            cpu = CpuUse(bench.programs(proxy))
            with LoopLag() as half_lag:
                half = await half_load(service, rate, args.half_duration)
            half_cpu = cpu.line(len(half))
        finally:
            await fanout.aclose()
    half_audio = [f.turn.first_audio for f in half if f.turn.first_audio is not None] or [math.nan]
    half_p95 = percentile(half_audio, 95)
    print(
        f"  {len(half)} turns, {len(lost(half))} lost; first audio p50 "
        f"{percentile(half_audio, 50):.2f} s p95 {half_p95:.2f} s\n  {half_cpu}\n  "
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
        started = time.perf_counter()
        with (
            fake_llm(work, reply) as llm,
            replicas(work, max(args.replicas), characters) as (speech, video),
        ):
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
                service.retriever.wait(180)
                classifier = service.emotion_classifier()
                assert classifier is not None
                time_emotions(classifier)
                print(
                    f"the fake LLM, {max(args.replicas)} replicas of each and chattr's knowledge "
                    f"ready in {time.perf_counter() - started:.1f} s",
                    flush=True,
                )
                bench = Bench(args, settings, service, llm, speech, video, work)
                return asyncio.run(run_benchmark(bench))
            finally:
                if service.retriever is not None:
                    service.retriever.close()


if __name__ == "__main__":
    raise SystemExit(main())
