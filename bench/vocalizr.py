"""vocalizr benchmark: real-time factor, time to first audio over HTTP, throughput at 8 concurrent.

Run: `.venv/bin/python bench/vocalizr.py [--runs N] [--engines piper,xtts]`, or with `--quick`
(one run per figure, 8 requests at once: that it runs, not its figures).
The piper engine is measured as shipped. The xtts engine uses `VOCALIZR_XTTS_DIR` when set;
otherwise a random-weight XTTS built from config (tiny on CPU, XTTS-v2-sized on a GPU), and its
figures then time the code path and model size only: random weights say nothing about quality.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# This file is named like the package it measures: keep bench/ off the import path so
# `import vocalizr` finds the package, not this script.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).parent]

import httpx  # noqa: E402
import soundfile as sf  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from vocalizr.api import create_app  # noqa: E402
from vocalizr.settings import Settings  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
ONE_SENTENCE = "I have walked these streets for many years, and I know every corner of them."
FIVE_SENTENCES = (
    "The sea was calm this morning. We left the harbour before the sun came up. "
    "By noon the wind had turned against us. Still, nobody on board complained. "
    "We reached the island just as the light was fading."
)
CONCURRENCY = 8
TARGETS = {
    "piper": "targets: RTF ≤ 0.03, one sentence ready ≤ 150 ms over HTTP",
    "xtts": "targets (GPU, real weights): RTF ≤ 0.2, first audio ≤ 200 ms",
}


@contextmanager
def running_service(settings: Settings) -> Iterator[tuple[str, FastAPI]]:
    """The real app under uvicorn in a thread, once its engine is loaded."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    settings = settings.model_copy(update={"host": "127.0.0.1", "port": port})
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    try:
        while True:
            try:
                health = httpx.get(f"{url}/healthz", timeout=5)
                if health.status_code == 200:
                    break
                if health.json().get("status") == "error":
                    raise SystemExit(f"engine failed to load: {health.text}")
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        print(f"  ready in {time.perf_counter() - started:.1f} s: {health.json()}")
        yield url, app
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms"


def measure_engine(app: FastAPI, text: str, runs: int) -> list[float]:
    """The engine alone, in process (voice matching included): RTF without HTTP or files."""
    engine = app.state.service.engine
    rtfs = []
    for _ in range(runs):
        started = time.perf_counter()
        samples = engine.synthesize(text, "reference", "en", 1.0)
        rtfs.append((time.perf_counter() - started) / (len(samples) / engine.sample_rate))
    return rtfs


def measure_whole(http: httpx.Client, text: str, runs: int) -> tuple[list[float], list[float]]:
    """POST /v1/speech: seconds until the file is ready, and wall-time RTF."""
    latencies, rtfs = [], []
    for _ in range(runs):
        started = time.perf_counter()
        reply = http.post("/v1/speech", json={"text": text, "voice": "reference"})
        elapsed = time.perf_counter() - started
        reply.raise_for_status()
        latencies.append(elapsed)
        rtfs.append(elapsed / reply.json()["duration_s"])
    return latencies, rtfs


def measure_first_audio(http: httpx.Client, text: str, runs: int) -> list[float]:
    """POST /v1/speech/stream: seconds until the first PCM bytes after the 44-byte header."""
    firsts = []
    for _ in range(runs):
        started = time.perf_counter()
        received = 0
        with http.stream(
            "POST", "/v1/speech/stream", json={"text": text, "voice": "reference"}
        ) as r:
            r.raise_for_status()
            for chunk in r.iter_bytes():
                received += len(chunk)
                if received > 44:
                    firsts.append(time.perf_counter() - started)
                    break
    return firsts


async def measure_throughput(url: str, requests: int) -> tuple[float, float, list[float], int]:
    """One-sentence lines from 8 concurrent clients: req/s, audio s/s, latencies, 503s."""
    latencies: list[float] = []
    audio_s = 0.0
    refused = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(requests):
        queue.put_nowait(index)

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal audio_s, refused
        while not queue.empty():
            queue.get_nowait()
            started = time.perf_counter()
            reply = await http.post("/v1/speech", json={"text": ONE_SENTENCE, "voice": "reference"})
            if reply.status_code == 503:
                refused += 1
                continue
            reply.raise_for_status()
            latencies.append(time.perf_counter() - started)
            audio_s += reply.json()["duration_s"]

    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(CONCURRENCY)))
        wall = time.perf_counter() - started
    return len(latencies) / wall, audio_s / wall, latencies, refused


def bench_engine(
    name: str, settings: Settings, runs: int, note: str = "", *, quick: bool = False
) -> None:
    print(f"\n== {name}{note}")
    print(f"  {TARGETS[name]}")
    with running_service(settings) as (url, app), httpx.Client(base_url=url, timeout=600) as http:
        http.post("/v1/speech", json={"text": "Warm up.", "voice": "reference"}).raise_for_status()
        print(
            f"  {'text':<12}{'engine RTF':>11}{'HTTP ready':>12}{'HTTP RTF':>10}"
            f"{'first audio':>13}   (medians; first audio from /v1/speech/stream)"
        )
        texts = [("1 sentence", ONE_SENTENCE), ("5 sentences", FIVE_SENTENCES)]
        for label, text in texts[:1] if quick else texts:
            engine_rtfs = measure_engine(app, text, runs)
            latencies, rtfs = measure_whole(http, text, runs)
            firsts = measure_first_audio(http, text, runs)
            print(
                f"  {label:<12}{statistics.median(engine_rtfs):>11.3f}{median_ms(latencies):>12}"
                f"{statistics.median(rtfs):>10.3f}{median_ms(firsts):>13}"
            )
        requests = CONCURRENCY * (3 if name == "piper" and not quick else 1)
        rate, audio_rate, latencies, refused = asyncio.run(measure_throughput(url, requests))
        p95 = sorted(latencies)[max(0, int(len(latencies) * 0.95) - 1)]
        print(
            f"  throughput, {CONCURRENCY} concurrent: {rate:.2f} req/s, "
            f"{audio_rate:.1f} s of audio per s; latency p50 {median_ms(latencies).strip()}, "
            f"p95 {p95 * 1000:.0f} ms; {refused} refused (503)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per figure (medians)")
    parser.add_argument("--engines", default="piper,xtts", help="comma-separated engine names")
    parser.add_argument("--quick", action="store_true", help="one run per figure: it runs")
    args = parser.parse_args()
    if args.quick:
        args.runs = 1
    env = Settings()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        reference = root / "characters" / "reference"
        reference.mkdir(parents=True)
        samples, rate = sf.read(ASSETS / "speech_en_16k.wav", dtype="float32", always_2d=True)
        sf.write(reference / "voice.wav", samples.mean(axis=1), rate)
        # VOCALIZR_* settings from the environment apply (threads, workers, voice matching).
        base = env.model_copy(
            update={"characters_dir": root / "characters", "ui": False, "max_queue": 64}
        )
        print(f"vocalizr benchmark: reference {ASSETS / 'speech_en_16k.wav'}, {args.runs} runs")
        # Figures scale with how busy the machine is: say so next to them.
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"{os.cpu_count()} CPU cores, load average {load} (1, 5, 15 min) at start")
        engines = args.engines.split(",")
        if "piper" in engines:
            settings = base.model_copy(update={"engine": "piper", "data_dir": root / "piper"})
            bench_engine("piper", settings, args.runs, " (with voice matching)", quick=args.quick)
        if "xtts" in engines:
            import torch

            note = ""
            xtts_dir = env.xtts_dir
            if xtts_dir is None:
                from vocalizr.engines.xtts_random import build_random_xtts

                full = torch.cuda.is_available()
                # Random weights never stop on their own: cap each sentence near real length
                # (XTTS makes ~21.5 audio tokens per second; 100 ≈ a 4.6 s sentence).
                tokens = 100 if full else 30
                xtts_dir = build_random_xtts(root / "xtts", full_size=full, max_audio_tokens=tokens)
                size = "XTTS-v2-sized" if full else "tiny (1 layer, 64 channels)"
                note = f" — RANDOM WEIGHTS, {size}: times the code path, not real speech"
            settings = base.model_copy(
                update={"engine": "xtts", "xtts_dir": xtts_dir, "data_dir": root / "xtts"}
            )
            runs = 1 if args.quick else max(3, args.runs // 2)
            bench_engine("xtts", settings, runs, note, quick=args.quick)


if __name__ == "__main__":
    main()
