"""A scene of three against one-character chats: when each reply's first text and first audio
come, with the real CPU services and a fake LLM at Groq's pace.

The scene: Napoleon, Einstein and a third member made for the bench (Marie Curie, Einstein's
folder under another id and name), the `list` strategy, so all three answer every message, in
order, each with speech and video (`SceneRunner`, the `/scene` endpoint's runner). The chats: the
same three replies, each the only reply of a one-character chat with its speaker, one after the
other with the services idle between them. The fake LLM answers each reply with the same scripted
text in both variants, at Groq's pace (150 ms to the first token, 300 tokens/s), through chattr's
real chat client; vocalizr and visualizr are real processes with their CPU engines. Per reply:
first text and first audio, from when that reply's LLM call reached the LLM and from the person's
message. Medians of --runs runs after one warm-up; the variants interleave run by run, and their
order alternates. Target (issue 23): a reply's first audio, from its LLM call, no later than it
would be in a one-character chat (ratio <= 1 per reply position). The verdict is on the scene's
first audio minus the chat's, run by run (each run's scene and chats are seconds apart): met
when their median is at most 0; within measurement when a distribution-free 95% interval of that
median (the sign test's; 6 runs or more give one) still reaches 0; missed when even its lower end
is later. The overlap shows the next
speaker's text starting while the previous speaker's media are still being made.

    .venv/bin/python bench/scene.py [--runs 5] [--speech-concurrency N] [--video-concurrency N]
        [--compare-before]   # also the scene as it was before the earlier replies' media made
                             # way for the next reply's first audio (`MediaJob.yield_to`, the
                             # speech slot reserved for first sentences)
    .venv/bin/python bench/scene.py --quick   # one run, no warm-up, no knowledge, short replies

The services are started with this process's environment, so their settings apply too, e.g.
`VOCALIZR_PIPER_THREADS=1 .venv/bin/python bench/scene.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench.stack`, from any folder

from bench.fanout import CallLog, record_calls
from bench.stack import REPO, BenchStack, StackFailed, bench_stack, load
from chattr.media.fanout import MediaFanout, MediaJob
from chattr.media.slots import PrioritySlots
from chattr.reply import TurnState
from chattr.scene.runner import SceneRunner
from chattr.testing.fake_llm import FakeLLMServer

FIRST_TOKEN_S = 0.150  # Groq-like, as bench/fanout.py
TOKENS_PER_S = 300.0
KNOWLEDGE_TIMEOUT_S = 900.0
RUN_TIMEOUT_S = 300.0  # one scene message, or one chat turn, may not take longer than this

MEMBERS = ("napoleon", "einstein", "curie")
MESSAGE = "What would each of you do with another hundred years?"
# One reply per member, three or four spoken sentences as the shipped characters' prompts ask;
# no sentence repeats, so each speech call names its reply.
REPLIES = {
    "napoleon": (
        "A hundred years, mon ami, and I would finish what Waterloo interrupted. "
        "Not with cannon this time, but with roads, schools and a code of law for all of Europe. "
        "The Civil Code outlived my empire, and it would outlive my second one too. "
        "Give me the time and I will give you a continent that works like a good army."
    ),
    "einstein": (
        "I would spend them on one problem, as I spent my last thirty years. "
        "A unified theory of the fields still escapes us, and I suspect I was looking in the "
        "wrong place. "
        "And I would play the violin a great deal more, because Mozart never disappoints. "
        "Curiosity, you see, has its own reason for existing."
    ),
    "curie": (
        "I would go back to the laboratory the next morning, and the morning after that. "
        "There are elements we have not yet isolated and radiations we do not yet understand. "
        "I would also insist that the young women who come after me get the same chance. "
        "Nothing in life is to be feared, it is only to be understood."
    ),
}
QUICK_REPLIES = {  # --quick: two short sentences each, a few seconds of compute in all
    "napoleon": "A hundred years, mon ami, and I would finish my work. Roads, schools and law.",
    "einstein": "I would spend them on one problem. And on the violin, a great deal more.",
    "curie": "I would go back to the laboratory. Nothing in life is to be feared.",
}
CURIE = {  # the bench's third member, on Einstein's portrait and voice
    "name": "Marie Curie",
    "nickname": "Marie",
    "description": "Physicist and chemist; twice a Nobel laureate, for physics and chemistry.",
    "personality": "Precise, modest, stubborn in her work; warm with students.",
    "scenario": "A quiet evening in her laboratory in Paris.",
    "greeting": "Good evening. I have a few minutes before the next measurement.",
    "system_prompt": "You are {{char}}, speaking with {{user}}. Answer in two to four sentences.",
}


def scene_characters(root: Path, *, knowledge: bool) -> Path:
    """A characters folder with the two shipped characters and the bench's third, on
    Einstein's portrait and voice. Without `knowledge`, no knowledge files (their embedding
    takes tens of seconds, which --quick should not spend); Curie has none either way."""
    target = root / "characters"
    ignore = None if knowledge else shutil.ignore_patterns("knowledge", "knowledge.vectors.npz")
    for character in ("napoleon", "einstein"):
        shutil.copytree(REPO / "characters" / character, target / character, ignore=ignore)
    curie = target / "curie"
    shutil.copytree(
        REPO / "characters" / "einstein",
        curie,
        ignore=shutil.ignore_patterns("knowledge", "knowledge.vectors.npz"),
    )
    card = yaml.safe_load((curie / "character.yaml").read_text())
    for key in ("alternate_greetings", "example_dialogue", "post_history_instructions", "tags"):
        card.pop(key, None)
    card.update(CURIE)
    (curie / "character.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    return target


@dataclass
class ReplyMarks:
    """One reply's marks, seconds after the person's message; None where it never happened."""

    character: str
    llm_call: float | None = None  # when its request reached the (fake) LLM
    first_text: float | None = None
    first_audio: float | None = None
    media_done: float | None = None  # its whole video joined (or its last media, if none)
    sentences: list[str] = field(default_factory=list)  # as spoken: its speech calls' keys
    audio_paths: list[str] = field(default_factory=list)  # its video calls' keys
    problem: str = ""

    def since_llm(self, mark: str) -> float | None:
        value = getattr(self, mark)
        return None if value is None or self.llm_call is None else value - self.llm_call


@dataclass
class Window:
    """The media calls made while one message was answered, and the sentences handed to the
    fan-out (perf_counter, from the instrumented fan-out)."""

    started: float  # perf_counter at the person's message
    calls: CallLog
    handed: dict[str, float]  # sentence -> when the fan-out got it


@dataclass
class Run:
    """One run of a variant: its replies in speaking order, and for each the window of calls it
    was made in (the scene's three share one; each chat has its own)."""

    replies: list[ReplyMarks]
    windows: list[Window]


class Recorder:
    """Times the fan-out's service calls and the moment each sentence reaches it."""

    def __init__(self, fanout: MediaFanout) -> None:
        assert fanout.vocalizr is not None and fanout.visualizr is not None
        self.calls = CallLog()
        self.handed: dict[str, float] = {}
        self.yielding = True  # False: jobs ignore `yield_to`
        record_calls(fanout.vocalizr, fanout.visualizr, self.calls)
        start = fanout.start

        def started(*args: Any, **kwargs: Any) -> MediaJob:
            job = start(*args, **kwargs)
            add = job.add
            if not self.yielding:
                setattr(job, "yield_to", lambda other: None)  # noqa: B010

            def handed(sentence: str, *rest: Any, **named: Any) -> None:
                self.handed.setdefault(sentence, time.perf_counter())
                add(sentence, *rest, **named)

            setattr(job, "add", handed)  # noqa: B010
            return job

        # Instance attributes shadow the methods for this fan-out only.
        setattr(fanout, "start", started)  # noqa: B010

    def open(self) -> None:
        self.calls.clear()
        self.handed.clear()

    def window(self, started: float) -> Window:
        return Window(
            started, CallLog(list(self.calls.speech), list(self.calls.video)), dict(self.handed)
        )


def observe(marks: ReplyMarks, state: TurnState, now: float) -> None:
    """Take the marks a caller can see in this state of one reply."""
    if state.text and marks.first_text is None:
        marks.first_text = now
    if marks.first_audio is None and any(s.audio_url for s in state.segments):
        marks.first_audio = now
    if marks.media_done is None and state.video_url:
        marks.media_done = now


def finish(marks: ReplyMarks, state: TurnState, now: float) -> None:
    """The reply's last state: its media are done, and whatever it lacks is its problem."""
    if marks.media_done is None:
        marks.media_done = now
    marks.sentences = [s.text for s in state.segments]
    marks.audio_paths = [urlsplit(s.audio_url or "").path for s in state.segments]
    problems = [f"{e.service}: {e.detail}" for e in state.errors]
    if not state.text:
        problems.insert(0, "no text")
    elif not state.segments or not all(s.audio_url and s.video_url for s in state.segments):
        problems.insert(0, "segments without audio+video")
    marks.problem = "; ".join(problems)


def llm_calls(llm: FakeLLMServer, since: int, clock: float, replies: list[ReplyMarks]) -> None:
    """Each reply's LLM call, in order: the requests the fake LLM got after the `since`th
    (`time.monotonic`, as `clock`)."""
    with llm.state.lock:
        arrivals = llm.state.arrivals[since:]
    for marks, arrived in zip(replies, arrivals, strict=False):
        marks.llm_call = arrived - clock


async def scene_run(
    stack: BenchStack,
    runner: SceneRunner,
    replies: dict[str, str],
    session: str,
    recorder: Recorder,
) -> Run:
    """One scene message: all three members answer, each with its media."""
    llm = stack.llm
    llm.script(*(replies[m] for m in MEMBERS))
    request = runner.validate(MESSAGE, list(MEMBERS), session, strategy="list", media=True)
    recorder.open()
    since = len(llm.state.arrivals)
    started, clock = time.perf_counter(), time.monotonic()
    marks: list[ReplyMarks] = []
    last = None
    async for last in runner.run(request):
        now = time.monotonic() - clock
        for index, reply in enumerate(last.replies):
            if index == len(marks):
                marks.append(ReplyMarks(reply.character))
            observe(marks[index], reply, now)
    assert last is not None and last.done
    now = time.monotonic() - clock
    for index, reply in enumerate(last.replies):
        finish(marks[index], reply, now)
    speakers = [m.character for m in marks]
    if speakers != list(MEMBERS):
        for m in marks:
            m.problem = m.problem or f"the speakers were {speakers}"
    llm_calls(llm, since, clock, marks)
    window = recorder.window(started)
    return Run(marks, [window] * len(marks))


async def chat_runs(
    stack: BenchStack, replies: dict[str, str], session: str, recorder: Recorder
) -> Run:
    """The same replies, each the only reply of a one-character chat, one after the other."""
    llm, service = stack.llm, stack.service
    run = Run([], [])
    for member in MEMBERS:
        llm.script(replies[member])
        recorder.open()
        since = len(llm.state.arrivals)
        marks = ReplyMarks(member)
        started, clock = time.perf_counter(), time.monotonic()
        last = None
        async for last in service.run(MESSAGE, member, f"{session}-{member}", media=True):
            observe(marks, last, time.monotonic() - clock)
        assert last is not None and last.done
        finish(marks, last, time.monotonic() - clock)
        llm_calls(llm, since, clock, [marks])
        run.replies.append(marks)
        run.windows.append(recorder.window(started))
    return run


def ms(value: float | None) -> str:
    return "    -" if value is None else f"{value * 1000:5.0f}"


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def paired_differences(scenes: list[Run], chats: list[Run], position: int) -> list[float]:
    """Scene minus chat, first audio from the reply's LLM call, run by run: the variants run one
    after the other within a run, so the machine's drift between runs cancels out."""
    differences = []
    for scene, chat in zip(scenes, chats, strict=False):
        if len(scene.replies) > position and len(chat.replies) > position:
            s = scene.replies[position].since_llm("first_audio")
            c = chat.replies[position].since_llm("first_audio")
            if s is not None and c is not None:
                differences.append(s - c)
    return differences


def sign_coverage(n: int, k: int) -> float:
    """How often the k-th smallest and k-th largest of n values enclose their median."""
    return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / (1 << n)


def median_interval(
    values: Sequence[float], confidence: float = 0.95
) -> tuple[float, float, float]:
    """The lower and upper ends of a distribution-free interval for the median (order
    statistics, as the sign test), and its coverage: at least `confidence` where the runs are
    enough (6 or more), else the most they allow."""
    ordered = sorted(values)
    n = len(ordered)
    k = 1
    while k + 1 <= n // 2 and sign_coverage(n, k + 1) >= confidence:
        k += 1
    return ordered[k - 1], ordered[n - k], sign_coverage(n, k)


def run_lines(label: str, run: Run) -> str:
    lines = [label]
    for m in run.replies:
        lines.append(
            f"    {m.character:8s}  llm call {ms(m.llm_call)}  text {ms(m.first_text)}  audio "
            f"{ms(m.first_audio)}  media done {ms(m.media_done)}"
            + (f"  [{m.problem}]" if m.problem else "")
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class FirstSpeech:
    """A reply's first sentence on its way to audio, seconds after the message."""

    handed: float  # the fan-out got it
    started: float  # its speech call began (it held a speech slot)
    ended: float
    others: int  # other replies' calls (speech or video) running at some point meanwhile

    @property
    def slot_wait(self) -> float:
        return self.started - self.handed

    @property
    def call(self) -> float:
        return self.ended - self.started


def first_speech(run: Run, position: int) -> FirstSpeech | None:
    marks, window = run.replies[position], run.windows[position]
    if not marks.sentences:
        return None
    sentence = marks.sentences[0]
    call = next((c for c in window.calls.speech if c.key == sentence), None)
    handed = window.handed.get(sentence)
    if call is None or handed is None:
        return None
    own = set(marks.sentences) | set(marks.audio_paths)
    others = sum(
        1
        for c in window.calls.speech + window.calls.video
        if c.key not in own and c.started < call.ended and c.ended > handed
    )
    t0 = window.started
    return FirstSpeech(handed - t0, call.started - t0, call.ended - t0, others)


def first_speech_table(runs: dict[str, list[Run]]) -> None:
    """Where each reply's first audio went, medians over the runs: its first sentence reached
    the fan-out, waited for one of chattr's speech slots, then the speech call (which includes
    vocalizr's own queue); and the other replies' calls that ran meanwhile."""
    print("\nwhere each reply's first audio went (medians, ms after the reply's LLM call):")
    print("    reply        variant           handed  slot wait  speech call  other replies' calls")
    for position, member in enumerate(MEMBERS):
        for label, mine in runs.items():
            found = [
                (run.replies[position].llm_call, first_speech(run, position))
                for run in mine
                if len(run.replies) > position
            ]
            pairs = [(llm, f) for llm, f in found if llm is not None and f is not None]
            if not pairs:
                print(f"    {position + 1} {member:10s} {label:16s}  no calls recorded")
                continue
            handed = median([f.handed - llm for llm, f in pairs])
            wait = median([f.slot_wait for _, f in pairs])
            call = median([f.call for _, f in pairs])
            others = median([float(f.others) for _, f in pairs])
            print(
                f"    {position + 1} {member:10s} {label:16s}  {ms(handed)}      {ms(wait)}"
                f"        {ms(call)}   {others or 0:4.1f}"
            )


def timeline(run: Run) -> None:
    """Every media call of one scene message, in the order they began."""
    window = run.windows[0]
    names: dict[str, str] = {}
    for marks in run.replies:
        for index, (sentence, path) in enumerate(
            zip(marks.sentences, marks.audio_paths, strict=True), 1
        ):
            names[sentence] = f"{marks.character} #{index} speech"
            names[path] = f"{marks.character} #{index} video"
    calls = sorted(window.calls.speech + window.calls.video, key=lambda c: c.started)
    t0 = window.started
    for marks in run.replies:
        print(
            f"    {marks.character:8s} LLM call at {ms(marks.llm_call)}, first text "
            f"{ms(marks.first_text)}, first audio {ms(marks.first_audio)}"
        )
    for c in calls:
        print(f"    {names.get(c.key, c.key[:30]):24s} {ms(c.started - t0)} - {ms(c.ended - t0)}")


SCENE = "scene"
BEFORE = "scene as before"  # no yielding, no reserved speech slot (--compare-before)
CHAT = "chat"


async def run_benchmark(stack: BenchStack, args: argparse.Namespace) -> int:
    replies = QUICK_REPLIES if args.quick else REPLIES
    runner = SceneRunner(stack.service, max_replies=len(MEMBERS))
    fanout = stack.fanout
    recorder = Recorder(fanout)
    warmups = 0 if args.quick else 1
    variants = [SCENE, BEFORE, CHAT] if args.compare_before else [SCENE, CHAT]
    speech_slots, _ = fanout._slots()
    # The fan-out's speech slots as they were: none reserved for first sentences.
    plain_slots = PrioritySlots(fanout.options.speech_concurrency)
    runs: dict[str, list[Run]] = {v: [] for v in variants}
    after = "one warm-up" if warmups else "no warm-up"
    print(
        f"\n{args.runs} runs of each after {after}, interleaved, the order rotating run by run: "
        f"{', '.join(variants)}; speech_concurrency={fanout.options.speech_concurrency}, "
        f"video_concurrency={fanout.options.video_concurrency}; {load()}",
        flush=True,
    )
    print("marks in ms after the person's message:")
    for run in range(1 - warmups, args.runs + 1):
        label = "warm-up" if run == 0 else f"run {run}"
        shift = run % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            recorder.yielding = variant != BEFORE
            fanout._speech_slots = plain_slots if variant == BEFORE else speech_slots
            if variant == CHAT:
                made = chat_runs(stack, replies, f"bench-chat-{run}", recorder)
            else:
                made = scene_run(stack, runner, replies, f"bench-{variant}-{run}", recorder)
            one = await asyncio.wait_for(made, RUN_TIMEOUT_S)
            title = "one-character chats" if variant == CHAT else variant
            print(run_lines(f"  {label}, {title}:", one), flush=True)
            if run > 0:
                runs[variant].append(one)

    problems = [m.problem for v in runs.values() for r in v for m in r.replies if m.problem]
    report(runs)
    if problems:
        print(f"\nINCOMPLETE replies: {problems}")
    print(f"\n{load()}")
    # A missed target is a figure to read (this machine is shared); a lost reply is a failure.
    return 1 if problems else 0


def column(runs: list[Run], position: int, mark: str, since_llm: bool) -> list[float | None]:
    """One mark of the replies at one position, over the runs."""
    replies = [r.replies[position] for r in runs if len(r.replies) > position]
    return [m.since_llm(mark) if since_llm else getattr(m, mark) for m in replies]


def report(runs: dict[str, list[Run]]) -> None:
    positions = range(len(MEMBERS))
    chats = runs[CHAT]
    scenes = {v: r for v, r in runs.items() if v != CHAT}
    print(
        f"\nmedians of {len(chats)} runs, ms; chat = the same reply as the only reply of a "
        "one-character chat"
    )
    for since_llm, title in ((True, "from the reply's LLM call"), (False, "from the message")):
        print(f"  {title}:")
        print(
            "    reply        variant            first text (chat, ratio)   first audio (chat, "
            "ratio)"
        )
        for p in positions:
            for variant, mine in scenes.items():
                line = f"    {p + 1} {MEMBERS[p]:10s} {variant:16s}"
                for mark in ("first_text", "first_audio"):
                    s = median(column(mine, p, mark, since_llm))
                    c = median(column(chats, p, mark, since_llm))
                    ratio = f"{s / c:5.2f}" if s is not None and c else "    -"
                    line += f"   {ms(s)} ({ms(c)}, {ratio})      "
                print(line.rstrip())

    print("  target: a reply's first audio, from its LLM call, <= the one-character chat's")
    for variant, mine in scenes.items():
        for p in positions:
            s, c = (
                median(column(mine, p, "first_audio", True)),
                median(column(chats, p, "first_audio", True)),
            )
            differences = paired_differences(mine, chats, p)
            if s is None or not c or not differences:
                print(f"    {variant}, reply {p + 1} ({MEMBERS[p]}): no figure")
                continue
            low, high, covered = median_interval(differences)
            typical = statistics.median(differences)
            paired = (
                f"run by run {typical * 1000:+.0f} ms, {covered:.0%} interval "
                f"[{low * 1000:+.0f}, {high * 1000:+.0f}]"
            )
            if len(differences) == 1:
                verdict = "one run: " + ("met" if typical <= 0 else "later; no interval")
            elif typical <= 0:
                verdict = f"met ({paired})"
            elif low <= 0:
                verdict = f"met within measurement ({paired} reaches 0)"
            else:
                verdict = f"MISSED ({paired}: later)"
            print(
                f"    {variant}, reply {p + 1} ({MEMBERS[p]}): first audio {s / c:.2f} x the "
                f"chat's ({(s - c) * 1000:+.0f} ms): {verdict}"
            )

    print("  overlap: the next speaker's text began before the previous one's media were done:")
    for p in positions[1:]:
        gaps = []
        for run in scenes[SCENE]:
            if len(run.replies) <= p:
                continue
            before, after = run.replies[p - 1], run.replies[p]
            if before.media_done is not None and after.first_text is not None:
                gaps.append(before.media_done - after.first_text)
        overlap = median(gaps)
        if overlap is None:
            print(f"    reply {p + 1}: no figure")
            continue
        held = sum(1 for g in gaps if g > 0)
        print(
            f"    reply {p + 1} ({MEMBERS[p]})'s first text {overlap * 1000:.0f} ms before reply "
            f"{p} ({MEMBERS[p - 1]})'s media were done (median; overlapped in {held}/"
            f"{len(gaps)} runs)"
        )

    first_speech_table(runs)
    mine = scenes[SCENE]
    middle = sorted(range(len(mine)), key=lambda i: mine[i].replies[-1].first_audio or 0.0)
    pick = middle[len(middle) // 2]
    print(f"\nthe scene's media calls in run {pick + 1} (ms after the message):")
    timeline(mine[pick])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs of each (median)")
    parser.add_argument("--speech-concurrency", type=int, default=None)
    parser.add_argument("--video-concurrency", type=int, default=None)
    parser.add_argument(
        "--compare-before",
        action="store_true",
        help="also run the scene as it was before its media made way for the next speaker "
        "(no yielding, no speech slot reserved for first sentences)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="one run, short replies: that it still runs"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 1
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    print(f"scene benchmark; {load()}", flush=True)
    service_env = {k: v for k, v in os.environ.items() if k.startswith(("VOCALIZR_", "VISUALIZR_"))}
    print(f"services' settings from the environment: {service_env or 'defaults'}")
    with tempfile.TemporaryDirectory(prefix="chattr-bench-scene-") as tmp:
        work = Path(tmp)
        overrides: dict[str, Any] = {
            "characters_dir": scene_characters(work, knowledge=not args.quick)
        }
        if args.speech_concurrency:
            overrides["speech_concurrency"] = args.speech_concurrency
        if args.video_concurrency:
            overrides["video_concurrency"] = args.video_concurrency
        try:
            with bench_stack(
                work,
                first_token_s=FIRST_TOKEN_S,
                tokens_per_s=TOKENS_PER_S,
                knowledge_timeout_s=KNOWLEDGE_TIMEOUT_S,
                **overrides,
            ) as stack:
                print(
                    f"services and knowledge ready in {stack.ready_s:.1f} s; fake LLM: "
                    f"{FIRST_TOKEN_S * 1000:.0f} ms to first token, {TOKENS_PER_S:.0f} tokens/s",
                    flush=True,
                )

                async def bench() -> int:
                    try:
                        return await run_benchmark(stack, args)
                    finally:
                        await stack.fanout.aclose()

                return asyncio.run(bench())
        except StackFailed as failure:
            print(failure)
            return 1


if __name__ == "__main__":
    raise SystemExit(main())
