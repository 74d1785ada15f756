"""A cold start as a new user meets it: `chattr` on an empty data folder, with its local services.

Each run starts `.venv/bin/chattr` as `make run` does (a subprocess, vocalizr and visualizr started
by it on the CPU engines, a fresh CHATTR_DATA_DIR, no Redis), with the LLM played by
chattr/testing/fake_llm.py at a hosted model's pace. The first message goes out through
gradio_client the moment the page answers, and the bench times, from the start of the process:
the page, that reply's first text, its first audio and its first video; then the resident
memory of each process after the turn. Targets: page <= 10 s, text <= 15 s, first video <= 20 s,
the stack <= 1.2 GB resident. For scale, the time of `python -c "import gradio"` before each
run: the floor of any Gradio app here; the first text should come within 1.8x of it and the
first video within 2.4x. Each run also says whether the first message's prompt (as the fake LLM
received it) held the character's knowledge. The machine's load average is printed: figures on a
shared machine are pessimistic. `make setup` compiles every module's bytecode, so no process
compiles at start; --compile-each-start measures the start where nobody did (each process
compiles what it imports, `import gradio` included).

    .venv/bin/python bench/startup.py [--runs 3] [--keep-logs DIR] [--compile-each-start]
    .venv/bin/python bench/startup.py --quick   # one run, text only: checks that it runs
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chattr.media.local_stack import free_port  # noqa: E402
from chattr.testing.fake_llm import FakeLLMServer  # noqa: E402

TARGETS_S = {"page": 10.0, "text": 15.0, "video": 20.0}
# Targets as multiples of `import gradio` measured in the same run, which a loaded machine slows
# as it slows chattr.
TARGET_RATIOS = {"first text": 1.8, "first video": 2.4}
TARGET_STACK_MB = 1200.0
MESSAGE = "Tell me about the battle you are proudest of."
CHARACTER = "napoleon"
# A hosted model's pace (Groq answers faster still): first token after 0.3 s, 60 tokens a second.
FIRST_TOKEN_S = 0.3
TOKENS_PER_S = 60.0


@dataclass
class Run:
    page_s: float = float("nan")
    client_s: float = float("nan")  # gradio_client connected (its config and API read)
    asked_s: float = float("nan")  # the first request reached the LLM
    text_s: float = float("nan")
    audio_s: float = float("nan")
    video_s: float = float("nan")
    done_s: float = float("nan")
    errors: list[str] = field(default_factory=list)
    rss_mb: dict[str, float] = field(default_factory=dict)
    knowledge: list[str] = field(default_factory=list)  # sources quoted in the first prompt


def knowledge_sources(request: dict[str, Any]) -> list[str]:
    """The knowledge passages' sources ("[knowledge/campaigns.md]") quoted in a chat request."""
    return [
        line.strip("[]")
        for message in request.get("messages", [])
        if message.get("role") == "system"
        for line in str(message.get("content", "")).splitlines()
        if line.startswith("[knowledge/") and line.endswith("]")
    ]


def chattr_command() -> list[str]:
    script = Path(sys.executable).with_name("chattr")
    return [str(script)] if script.exists() else [sys.executable, "-m", "chattr"]


def wait_for_page(process: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    """Ask for the page every 0.05 s, on one kept client: `httpx.get` builds a TLS context per
    call (25 ms of CPU), which made this poll take a third of a core from the start it times."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"chattr exited with code {process.returncode}")
            try:
                if (
                    client.get(url + "/").status_code == 200
                    and client.get(url + "/config").status_code == 200
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    raise RuntimeError(f"the page was not up within {timeout:.0f} s")


def resident_mb(process: subprocess.Popen[bytes]) -> dict[str, float]:
    """RSS of chattr and each process it started, by name."""
    parent = psutil.Process(process.pid)
    found = {"chattr": parent.memory_info().rss / 2**20}
    for child in parent.children(recursive=True):
        command = " ".join(child.cmdline())
        name = next((n for n in ("vocalizr", "visualizr") if f"-m {n}" in command), child.name())
        found[name] = found.get(name, 0.0) + child.memory_info().rss / 2**20
    return found


# Where no process may find or write bytecode (--compile-each-start): an empty folder.
NO_BYTECODE: dict[str, str] = {}


def one_run(llm: FakeLLMServer, work: Path, index: int, *, media: bool = True) -> Run:
    from gradio_client import Client

    llm.clear()
    llm_url = llm.url
    run = Run()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **NO_BYTECODE,
        "CHATTR_LLM_BASE_URL": llm_url,
        "CHATTR_DATA_DIR": str(work / f"data-{index}"),  # empty: nothing indexed, nothing cached
        "CHATTR_CHARACTERS_DIR": str(REPO / "characters"),
    }
    for name in ("CHATTR_REDIS_URL", "CHATTR_VOCALIZR_URL", "CHATTR_VISUALIZR_URL"):
        env.pop(name, None)
    log = (work / f"chattr-{index}.log").open("wb")
    started = time.monotonic()
    process = subprocess.Popen(
        [*chattr_command(), "--port", str(port), *([] if media else ["--no-media"])],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_page(process, url, 600)  # minutes, on a shared machine under load
        run.page_s = time.monotonic() - started
        client = Client(url, verbose=False, httpx_kwargs={"timeout": 120})
        run.client_s = time.monotonic() - started
        job = client.submit(MESSAGE, CHARACTER, "", True, api_name="/chat")
        last: dict[str, Any] | None = None
        for update in job:
            now = time.monotonic() - started
            last = update
            if update.get("text") and run.text_s != run.text_s:  # first time (nan != nan)
                run.text_s = now
            segments = update.get("segments") or []
            if any(s.get("audio_url") for s in segments) and run.audio_s != run.audio_s:
                run.audio_s = now
            if any(s.get("video_url") for s in segments) and run.video_s != run.video_s:
                run.video_s = now
        run.done_s = time.monotonic() - started
        final = job.outputs()[-1] if job.outputs() else last
        run.errors = [f"{e['service']}: {e['detail']}" for e in (final or {}).get("errors", [])]
        if llm.requests:
            run.knowledge = knowledge_sources(llm.requests[0])
            # The fake LLM notes arrivals on this process's monotonic clock.
            run.asked_s = llm.state.arrivals[0] - started
        time.sleep(1.0)  # let the services settle after the turn (files written, buffers freed)
        run.rss_mb = resident_mb(process)
    finally:
        children = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
        psutil.wait_procs(children, timeout=15)
        log.close()
    return run


def keep_logs(work: Path, index: int, target: Path) -> None:
    """Copy run `index`'s logs (chattr's, and the services' in its data folder) to `target`."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(work / f"chattr-{index}.log", target / f"chattr-{index}.log")
    for path in (work / f"data-{index}" / "logs").glob("*.log"):
        shutil.copy(path, target / f"{path.stem}-{index}.log")


def import_gradio_s() -> float:
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", "import gradio"], check=True, env={**os.environ, **NO_BYTECODE}
    )
    return time.monotonic() - started


def median(values: Sequence[float]) -> float:
    present = [v for v in values if v == v]
    return statistics.median(present) if present else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="one run without the media services (a smoke test)"
    )
    parser.add_argument(
        "--keep-logs", type=Path, help="copy each run's logs (chattr's, the services') here"
    )
    parser.add_argument(
        "--compile-each-start",
        action="store_true",
        help="every process compiles its modules as it imports them, as where set-up made no "
        "bytecode and Python may not write it (PYTHONDONTWRITEBYTECODE)",
    )
    args = parser.parse_args(argv)
    if args.compile_each_start:
        empty = tempfile.mkdtemp(prefix="chattr-no-bytecode-")
        NO_BYTECODE.update(PYTHONPYCACHEPREFIX=empty, PYTHONDONTWRITEBYTECODE="1")
    if args.quick:
        args.runs = 1
    print(
        f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} on {os.cpu_count()} cpus"
    )
    llm = FakeLLMServer(first_token_s=FIRST_TOKEN_S, tokens_per_s=TOKENS_PER_S).start()
    runs: list[Run] = []
    gradio: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="chattr-startup-") as tmp:
            for index in range(args.runs):
                gradio.append(import_gradio_s())
                run = one_run(llm, Path(tmp), index, media=not args.quick)
                runs.append(run)
                if args.keep_logs is not None:
                    keep_logs(Path(tmp), index, args.keep_logs)
                memory = "  ".join(f"{k} {v:.0f}" for k, v in sorted(run.rss_mb.items()))
                print(
                    f"run {index + 1}: page {run.page_s:.1f} s  text {run.text_s:.1f} s  "
                    f"audio {run.audio_s:.1f} s  video {run.video_s:.1f} s  "
                    f"done {run.done_s:.1f} s  | RSS MB {memory} (total "
                    f"{sum(run.rss_mb.values()):.0f})  | import gradio {gradio[-1]:.1f} s",
                    flush=True,
                )
                print(
                    f"    the first message: client connected {run.client_s:.1f} s, "
                    f"LLM asked {run.asked_s:.1f} s (its first token {FIRST_TOKEN_S} s later)"
                )
                if run.knowledge:
                    print(f"    knowledge in the first prompt: {', '.join(run.knowledge)}")
                else:
                    print("    knowledge in the first prompt: NONE")
                for error in run.errors:
                    print(f"    error: {error}")
    finally:
        llm.stop()

    print(f"\nmedians of {len(runs)} cold starts (seconds from the process start):")
    rows = [
        ("page", [r.page_s for r in runs], TARGETS_S["page"]),
        ("first text", [r.text_s for r in runs], TARGETS_S["text"]),
        ("first audio", [r.audio_s for r in runs], None),
        ("first video", [r.video_s for r in runs], TARGETS_S["video"]),
        ("turn done", [r.done_s for r in runs], None),
    ]
    floor = median(gradio)
    for name, values, target in rows:
        value = median(values)
        # Each run's own ratio, then their median: the floor moves with the load, run by run.
        ratio = median([v / g for v, g in zip(values, gradio, strict=True)])
        verdicts = [] if value == value else ["none came (text only, or no media in time)"]
        if target is not None and value == value:
            met = "met" if value <= target else "MISSED"
            verdicts.append(f"target <= {target:.0f} s: {met}")
        if name in TARGET_RATIOS and value == value:
            goal = TARGET_RATIOS[name]
            verdicts.append(f"ratio <= {goal:.1f}: " + ("met" if ratio <= goal else "MISSED"))
        print(
            f"  {name:<12} {value:6.1f} s   ({ratio:4.2f} x import gradio)  {'; '.join(verdicts)}"
        )
    print(f"  {'import gradio':<12} {floor:6.1f} s   (python -c 'import gradio', the floor)")
    with_knowledge = sum(1 for r in runs if r.knowledge)
    print(f"  first prompt held the character's knowledge in {with_knowledge} of {len(runs)} runs")
    names = sorted({name for r in runs for name in r.rss_mb})
    print("\nresident memory after the turn (median RSS, MB):")
    for name in names:
        print(f"  {name:<12} {median([r.rss_mb.get(name, float('nan')) for r in runs]):7.0f}")
    total = median([sum(r.rss_mb.values()) for r in runs])
    print(
        f"  {'stack':<12} {total:7.0f}   target <= {TARGET_STACK_MB:.0f} MB: "
        f"{'met' if total <= TARGET_STACK_MB else 'MISSED'} (RSS counts shared pages in each)"
    )
    print(f"\nload after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (uptime's 1/5 min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
