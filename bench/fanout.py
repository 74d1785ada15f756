"""The media fan-out against the sequential baseline, with the real CPU services, and under load.

A fake LLM streams a 6-sentence Napoleon reply at a Groq-like pace (150 ms to the first token,
300 tokens/s) through chattr's real chat client. (a) The pipeline: `ChatService.run(media=True)`,
each sentence to vocalizr as soon as it is complete and each audio on to visualizr. (b) The
baseline: the same turn without media, then ONE vocalizr call for the whole reply, then ONE
visualizr call for that audio. Every mark is wall-clock from the start of the turn; figures are
medians of --runs turns of each, interleaved, after one warm-up turn of each. Targets: first video
<= 0.35 x the baseline's, full reply <= 0.8 x. Then --concurrent conversations at once: no lost
turns, p50/p95 turn time. Where the time went is printed per sentence for the pipeline.

    .venv/bin/python bench/fanout.py [--runs 5] [--concurrent 16]
        [--speech-concurrency N] [--video-concurrency N]   # override chattr's settings
    .venv/bin/python bench/fanout.py --quick   # one turn of each, no warm-up, 2 at once, no
                                               # knowledge, a 2-sentence reply: that it runs

The services are started with this process's environment, so their settings apply too, e.g.
`VOCALIZR_PIPER_THREADS=1 VISUALIZR_WORKERS=2 .venv/bin/python bench/fanout.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench.stack`, from any folder

from bench.stack import (
    CHARACTER,
    BenchStack,
    StackFailed,
    bench_stack,
    load,
    quick_characters,
)
from chattr.media.clients import VisualizrClient, VocalizrClient
from chattr.reply import TurnState
from chattr.turn.service import ChatService

FIRST_TOKEN_S = 0.150  # Groq's time to first token for a 70B model, roughly
TOKENS_PER_S = 300.0
TARGET_FIRST_VIDEO = 0.35
TARGET_FULL = 0.80
TURN_TIMEOUT_S = 180.0  # one turn may not take longer than this
BURST_TIMEOUT_S = 600.0  # nor the concurrent conversations together; unfinished ones are lost

QUESTION = "Tell me about the battle you are proudest of."
REPLY = (
    "Ah, you ask about Austerlitz, the finest day of my life as a soldier. "
    "On the second of December 1805, the fog lay thick over the Pratzen Heights while the "
    "Russians and Austrians marched across my front. "
    "I let them believe my right flank was weak, and they took the bait with all the eagerness "
    "of young fools. "
    "When the sun broke through the mist, Soult's divisions climbed the heights and cut their "
    "army in two. "
    "By evening the allied emperors were fleeing, and thousands of their men lay on the frozen "
    "ponds below. "
    "Remember this, my friend: in war, the moral is to the physical as three is to one."
)
# --quick: two sentences, a few seconds of speech, so the check costs seconds of compute.
QUICK_REPLY = (
    "Ah, you ask about Austerlitz, the finest day of my life as a soldier. "
    "Remember this, my friend: in war, the moral is to the physical as three is to one."
)

MEASURES = ("first_text", "first_audio", "first_video", "full")


@dataclass
class Call:
    """One media service call as the fan-out made it: what for, when it ran (perf_counter)."""

    key: str  # speech: the sentence; video: the path of the audio URL
    started: float
    ended: float


@dataclass
class CallLog:
    """Media calls of every turn, recorded by wrapping the clients' request methods."""

    speech: list[Call] = field(default_factory=list)
    video: list[Call] = field(default_factory=list)

    def clear(self) -> None:
        self.speech.clear()
        self.video.clear()


def record_calls(vocalizr: VocalizrClient, visualizr: VisualizrClient, log: CallLog) -> None:
    """Time each synthesize/render call of these clients (inside the fan-out's slots)."""

    def timed(
        method: Callable[..., Awaitable[Any]], calls: list[Call], key: Callable[[str], str]
    ) -> Callable[..., Awaitable[Any]]:
        # Positional-only: the methods' own keywords (`first=`) pass through untouched.
        async def call(subject: str, /, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(subject, *args, **kwargs)
            finally:
                calls.append(Call(key(subject), started, time.perf_counter()))

        return call

    # Instance attributes shadow the methods for these two clients only.
    setattr(vocalizr, "synthesize", timed(vocalizr.synthesize, log.speech, str))  # noqa: B010
    setattr(visualizr, "render", timed(visualizr.render, log.video, lambda u: urlsplit(u).path))  # noqa: B010


@dataclass
class TurnResult:
    """Wall-clock marks of one turn, seconds from its start; None where it never happened."""

    first_text: float | None = None
    first_audio: float | None = None
    first_video: float | None = None
    full: float | None = None
    llm_done: float | None = None  # the last text change seen: the LLM's stream ended
    started: float = 0.0  # perf_counter at the start, to place the calls of CallLog
    added: dict[str, float] = field(default_factory=dict)  # sentence -> when the fan-out got it
    state: TurnState | None = None
    complete: bool = False  # text, and every segment has audio and video
    problem: str = ""

    def mark(self, name: str) -> None:
        if getattr(self, name) is None:
            setattr(self, name, time.perf_counter() - self.started)


async def pipeline_turn(service: ChatService, session_id: str) -> TurnResult:
    """One turn with the fan-out; marks are taken as a caller of `run` sees the states."""
    result = TurnResult(started=time.perf_counter())
    text_length = 0
    async for state in service.run(QUESTION, CHARACTER, session_id, media=True):
        if state.text:
            result.mark("first_text")
        now = time.perf_counter() - result.started
        streaming = len(state.text) != text_length and not state.done
        if streaming:
            text_length = len(state.text)
            result.llm_done = now
        for segment in state.segments:
            # A segment first seen on a media update was the tail flushed when the stream ended.
            added = now if streaming or result.llm_done is None else result.llm_done
            result.added.setdefault(segment.text, added)
        if any(s.audio_url for s in state.segments):
            result.mark("first_audio")
        if any(s.video_url for s in state.segments):
            result.mark("first_video")
        if state.done:
            result.mark("full")
            result.state = state
    check_complete(result)
    return result


def check_complete(result: TurnResult) -> None:
    state = result.state
    if state is None or not state.text:
        result.problem = "no text"
    elif not state.segments:
        result.problem = "no segments"
    elif not all(s.audio_url and s.video_url for s in state.segments):
        missing = sum(1 for s in state.segments if not (s.audio_url and s.video_url))
        result.problem = f"{missing}/{len(state.segments)} segments without audio+video"
    elif not (state.audio_url and state.video_url):
        result.problem = "no joined audio/video"
    if state is not None and state.errors:
        errors = "; ".join(f"{e.service}: {e.detail}" for e in state.errors)
        result.problem = f"{result.problem}; {errors}" if result.problem else errors
    result.complete = not result.problem


@dataclass
class BaselineResult:
    marks: TurnResult
    speech_s: float = 0.0
    video_s: float = 0.0
    audio_duration_s: float = 0.0


async def baseline_turn(
    service: ChatService, vocalizr: VocalizrClient, visualizr: VisualizrClient, session_id: str
) -> BaselineResult:
    """The whole reply first, then one speech call for all of it, then one video call."""
    result = TurnResult(started=time.perf_counter())
    state: TurnState | None = None
    async for state in service.run(QUESTION, CHARACTER, session_id, media=False):
        if state.text:
            result.mark("first_text")
    assert state is not None and state.done
    result.llm_done = time.perf_counter() - result.started
    speech_started = time.perf_counter()
    speech = await vocalizr.synthesize(state.text, CHARACTER, "en")
    result.mark("first_audio")
    video_started = time.perf_counter()
    await visualizr.render(vocalizr.internal_url(speech.url), CHARACTER, 25)
    result.mark("first_video")
    result.mark("full")
    result.complete = True
    return BaselineResult(
        result,
        speech_s=video_started - speech_started,
        video_s=time.perf_counter() - video_started,
        audio_duration_s=speech.duration_s,
    )


Scrape = tuple[dict[str, float], dict[str, float]]  # vocalizr's and visualizr's counters
_METRIC = re.compile(r"^(\w+?)(?:\{[^}]*\})? ([0-9.eE+-]+)$", re.MULTILINE)


def scrape(url: str, key: str | None) -> dict[str, float]:
    """A service's Prometheus counters, summed over labels."""
    headers = {"Authorization": f"Bearer {key}"} if key else None
    reply = httpx.get(url + "/metrics", headers=headers, timeout=5)
    reply.raise_for_status()
    totals: dict[str, float] = {}
    for name, value in _METRIC.findall(reply.text):
        totals[name] = totals.get(name, 0.0) + float(value)
    return totals


@dataclass
class ServerWork:
    """What the services themselves spent between two scrapes (their own histograms)."""

    speech_jobs: int
    speech_s: float
    audio_s: float
    video_jobs: int
    video_s: float

    @classmethod
    def between(cls, before: Scrape, after: Scrape) -> ServerWork:
        (v0, z0), (v1, z1) = before, after

        def delta(a: dict[str, float], b: dict[str, float], name: str) -> float:
            return b.get(name, 0.0) - a.get(name, 0.0)

        return cls(
            speech_jobs=round(delta(v0, v1, "vocalizr_synthesis_seconds_count")),
            speech_s=delta(v0, v1, "vocalizr_synthesis_seconds_sum"),
            audio_s=delta(v0, v1, "vocalizr_audio_seconds_total"),
            video_jobs=round(delta(z0, z1, "visualizr_render_seconds_count")),
            video_s=delta(z0, z1, "visualizr_render_seconds_sum"),
        )

    def line(self) -> str:
        per_speech = self.speech_s / max(self.speech_jobs, 1)
        per_video = self.video_s / max(self.video_jobs, 1)
        return (
            f"vocalizr {self.speech_jobs} jobs, {self.speech_s:.2f} s compute "
            f"({per_speech * 1000:.0f} ms/job, {self.audio_s:.1f} s of audio); "
            f"visualizr {self.video_jobs} jobs, {self.video_s:.2f} s compute "
            f"({per_video * 1000:.0f} ms/job)"
        )


def ms(value: float | None) -> str:
    return "    -" if value is None else f"{value * 1000:5.0f}"


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def profile(result: TurnResult, calls: CallLog) -> None:
    """Per sentence: when it reached the fan-out, its speech call, its video call (ms).

    wait = time in chattr's concurrency slots; a call's time includes any wait in the service's
    own queue (a service with one worker runs one job at a time).
    """
    state = result.state
    assert state is not None
    t0 = result.started
    speech = {c.key: c for c in calls.speech}
    video = {c.key: c for c in calls.video}
    print(
        "   #  chars  audio_s   added  sp.wait  speech(start-end)   vd.wait  video(start-end)"
        "   speech_ms video_ms"
    )
    for index, segment in enumerate(state.segments, 1):
        s = speech.get(segment.text)
        v = video.get(urlsplit(segment.audio_url or "").path)
        added = result.added.get(segment.text)
        line = f"  {index:2d}  {len(segment.text):5d}  {segment.audio_duration_s or 0:7.2f}  "
        line += f"{ms(added)}  "
        if s is not None and added is not None:
            line += f"{ms(s.started - t0 - added)}  {ms(s.started - t0)}-{ms(s.ended - t0)}     "
        else:
            line += " " * 28
        if v is not None and s is not None:
            line += f"{ms(v.started - s.ended)}  {ms(v.started - t0)}-{ms(v.ended - t0)}     "
            line += f"{ms(s.ended - s.started)}    {ms(v.ended - v.started)}"
        print(line)
    last_video = max((c.ended for c in calls.video), default=t0) - t0
    print(
        f"  LLM stream done {ms(result.llm_done)} ms; last video {last_video * 1000:.0f} ms; "
        f"join + memory write {ms((result.full or 0) - last_video)} ms; full {ms(result.full)} ms"
    )


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


async def run_benchmark(bench: BenchStack, args: argparse.Namespace, reply: str) -> int:
    service, fanout, llm = bench.service, bench.fanout, bench.llm
    vocalizr, visualizr = bench.local.vocalizr, bench.local.visualizr
    assert vocalizr is not None and visualizr is not None
    assert fanout.vocalizr is not None and fanout.visualizr is not None
    calls = CallLog()
    record_calls(fanout.vocalizr, fanout.visualizr, calls)
    # The baseline's own clients, with the fan-out's options and the services' keys.
    base_vocalizr, base_visualizr = bench.service_clients()
    warmups = 0 if args.quick else 1

    def metrics() -> Scrape:
        assert vocalizr is not None and visualizr is not None
        return scrape(vocalizr.url, vocalizr.api_key), scrape(visualizr.url, visualizr.api_key)

    pipeline: list[TurnResult] = []
    baseline: list[BaselineResult] = []
    pipeline_calls: list[CallLog] = []
    pipeline_work: list[ServerWork] = []
    try:
        after = "one warm-up" if warmups else "no warm-up"
        print(f"\n{args.runs} runs of each after {after}, interleaved; {load()}", flush=True)
        for run in range(1 - warmups, args.runs + 1):
            llm.script(reply)
            before = metrics()
            calls.clear()
            turn = await asyncio.wait_for(
                pipeline_turn(service, f"bench-pipeline-{run}"), TURN_TIMEOUT_S
            )
            work = ServerWork.between(before, metrics())
            llm.script(reply)
            base = await asyncio.wait_for(
                baseline_turn(service, base_vocalizr, base_visualizr, f"bench-baseline-{run}"),
                TURN_TIMEOUT_S,
            )
            label = "warm-up" if run == 0 else f"run {run}"
            print(
                f"  {label:8s} pipeline: text {ms(turn.first_text)}  audio {ms(turn.first_audio)}"
                f"  video {ms(turn.first_video)}  full {ms(turn.full)} ms"
                f"{'' if turn.complete else '  INCOMPLETE: ' + turn.problem}\n"
                f"  {'':8s} baseline: text {ms(base.marks.first_text)}  audio "
                f"{ms(base.marks.first_audio)}  video {ms(base.marks.first_video)}  full "
                f"{ms(base.marks.full)} ms  (speech {base.speech_s:.2f} s, video "
                f"{base.video_s:.2f} s for {base.audio_duration_s:.1f} s of audio)",
                flush=True,
            )
            if run > 0:
                pipeline.append(turn)
                baseline.append(base)
                pipeline_calls.append(CallLog(list(calls.speech), list(calls.video)))
                pipeline_work.append(work)

        print(f"\nmedians of {args.runs} runs, ms from the start of the turn:")
        print("                   pipeline  baseline   ratio  target")
        for measure in MEASURES:
            p = median([getattr(t, measure) for t in pipeline])
            b = median([getattr(t.marks, measure) for t in baseline])
            ratio = p / b if p is not None and b else None
            target = {"first_video": TARGET_FIRST_VIDEO, "full": TARGET_FULL}.get(measure)
            verdict = ""
            if target is not None and ratio is not None:
                verdict = f"<= {target:.2f} {'met' if ratio <= target else 'MISSED'}"
            ratio_text = "    -" if ratio is None else f"{ratio:5.2f}"
            print(f"  {measure:14s}  {ms(p)}     {ms(b)}     {ratio_text}   {verdict}")
        print(
            f"  baseline parts (median): LLM {ms(median([b.marks.llm_done for b in baseline]))}"
            f" ms, one speech call {median([b.speech_s for b in baseline]) or 0:.2f} s, one "
            f"video call {median([b.video_s for b in baseline]) or 0:.2f} s"
        )
        incomplete = [t.problem for t in pipeline if not t.complete]
        lost = len(incomplete)
        if incomplete:
            print(f"  INCOMPLETE pipeline turns: {incomplete}")

        # The run whose full time is the median: where its time went, sentence by sentence.
        order = sorted(range(len(pipeline)), key=lambda i: pipeline[i].full or 0.0)
        middle = order[len(order) // 2]
        print(f"\nwhere the pipeline's time went (run {middle + 1}, the median full reply):")
        profile(pipeline[middle], pipeline_calls[middle])
        print(f"  services' own compute in that turn: {pipeline_work[middle].line()}")

        if args.concurrent:
            print(
                f"\n{args.concurrent} concurrent conversations (speech_concurrency="
                f"{fanout.options.speech_concurrency}, video_concurrency="
                f"{fanout.options.video_concurrency}); {load()}",
                flush=True,
            )
            llm.script(*[reply] * args.concurrent)
            before = metrics()
            calls.clear()
            burst_started = time.perf_counter()
            tasks = [
                asyncio.create_task(pipeline_turn(service, f"bench-burst-{i}"))
                for i in range(args.concurrent)
            ]
            _, unfinished = await asyncio.wait(tasks, timeout=BURST_TIMEOUT_S)
            for task in unfinished:
                task.cancel()
            turns = await asyncio.gather(*tasks, return_exceptions=True)
            if unfinished:
                print(f"  {len(unfinished)} turns unfinished after {BURST_TIMEOUT_S:.0f} s")
            wall = time.perf_counter() - burst_started
            work = ServerWork.between(before, metrics())
            done = [t for t in turns if isinstance(t, TurnResult)]
            failed = [t for t in turns if not isinstance(t, TurnResult)]
            complete = [t for t in done if t.complete]
            with_text = [t for t in done if t.state is not None and t.state.text]
            print(
                f"  {len(with_text)}/{args.concurrent} turns returned text, {len(complete)}/"
                f"{args.concurrent} with audio+video on every segment and joined "
                f"({'no lost turns' if len(complete) == args.concurrent else 'TURNS LOST'})"
            )
            lost += args.concurrent - len(complete)
            for t in done:
                if not t.complete:
                    print(f"    incomplete: {t.problem}")
            for error in failed:
                print(f"    failed: {type(error).__name__}: {error}")
            for measure in ("first_text", "first_audio", "first_video", "full"):
                values = [getattr(t, measure) for t in done if getattr(t, measure) is not None]
                if values:
                    print(
                        f"  {measure:12s} p50 {percentile(values, 50):6.2f} s   "
                        f"p95 {percentile(values, 95):6.2f} s   max {max(values):6.2f} s"
                    )
            # A rough view of queueing: when the last speech call got a slot.
            speech_slots = [c.started - burst_started for c in calls.speech]
            print(
                f"  burst wall {wall:.1f} s; {work.line()}\n"
                f"  busy: vocalizr {work.speech_s / wall:.0%} of the burst, visualizr "
                f"{work.video_s / wall:.0%}; last speech call got its slot at "
                f"{max(speech_slots, default=0):.1f} s"
            )
        print(f"\n{load()}")
        # A missed target is a figure to read (this machine is shared); a lost turn is a failure.
        return 1 if lost else 0
    finally:
        await base_vocalizr.aclose()
        await base_visualizr.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured turns of each (median)")
    parser.add_argument(
        "--concurrent", type=int, default=16, help="conversations at once (0: skip)"
    )
    parser.add_argument("--speech-concurrency", type=int, default=None)
    parser.add_argument("--video-concurrency", type=int, default=None)
    parser.add_argument(
        "--quick", action="store_true", help="one turn of each, 2 at once: that it still runs"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.concurrent = 1, 2
    reply = QUICK_REPLY if args.quick else REPLY
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    print(f"fan-out benchmark; {load()}", flush=True)
    service_env = {k: v for k, v in os.environ.items() if k.startswith(("VOCALIZR_", "VISUALIZR_"))}
    print(f"services' settings from the environment: {service_env or 'defaults'}")
    with tempfile.TemporaryDirectory(prefix="chattr-bench-fanout-") as tmp:
        work = Path(tmp)
        overrides: dict[str, Any] = {}
        if args.speech_concurrency:
            overrides["speech_concurrency"] = args.speech_concurrency
        if args.video_concurrency:
            overrides["video_concurrency"] = args.video_concurrency
        if args.quick:
            overrides["characters_dir"] = quick_characters(work)
        try:
            with bench_stack(
                work, first_token_s=FIRST_TOKEN_S, tokens_per_s=TOKENS_PER_S, **overrides
            ) as stack:
                vocalizr, visualizr = stack.local.vocalizr, stack.local.visualizr
                assert vocalizr is not None and visualizr is not None
                print(
                    f"services and knowledge ready in {stack.ready_s:.1f} s "
                    f"(vocalizr {vocalizr.url}, visualizr {visualizr.url})\n"
                    f"fake LLM: {FIRST_TOKEN_S * 1000:.0f} ms to first token, "
                    f"{TOKENS_PER_S:.0f} tokens/s; reply {len(reply.split())} words, "
                    f"{len(reply)} chars",
                    flush=True,
                )

                async def bench() -> int:
                    try:
                        return await run_benchmark(stack, args, reply)
                    finally:
                        await stack.fanout.aclose()

                return asyncio.run(bench())
        except StackFailed as failure:
            print(failure)
            return 1


if __name__ == "__main__":
    raise SystemExit(main())
