"""Every bench runs: each `bench/*.py --quick` exits 0 and prints its figures.

The figures themselves are not judged here (a shared machine's speed is not a fact about the
code); that each bench still starts its stack, measures and reports is.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = {"stack.py", "stand_in.py"}  # what the benches import or start, not benches
# A line each bench prints only once it has measured: its summary figures.
FIGURES = {
    "fanout.py": r"first_video +\d+ +\d+ +[\d.]+(?s:.*)no lost turns",
    "emotions.py": r"chosen: sure \d+/\d+, right \d+/\d+(?s:.*)one sentence: p50 [\d.]+ ms",
    "scene.py": r"scene, reply 3 \(curie\): first audio [\d.]+ x the chat's(?s:.*)"
    r"reply 3 \(curie\)'s first text -?\d+ ms before reply 2",
    "scale.py": r"2 replicas / 1: [\d.]+x turns per minute(?s:.*)lost turns: 0 \(none lost\)",
    "startup.py": r"\d+\.\d s",
    "stt.py": r"WER over \d+ words: faster-whisper [\d.]+%, moonshine [\d.]+%(?s:.*)"
    r"latency moonshine / faster-whisper: median ratio [\d.]+",
    "turn_overhead.py": r"ratio p50\([\d,]+\) / p50\([\d,]+\): [\d.]+(?s:.*)"
    r"tracing on / off, turn p50: [\d.]+(?s:.*)spans received: [\d,]+ of [\d,]+ \(none lost\)",
    "visualizr.py": r"warp \(cpu, 1 thread\) +256px +[\d.]+ fps(?s:.*)musetalk .* [\d.]+ fps",
    "vocalizr.py": r"throughput, 8 concurrent: [\d.]+ req/s(?s:.*)== xtts(?s:.*)throughput",
    "voice_turn.py": r"first_video +\d+ ",
}
BENCHES = sorted(path.name for path in (REPO / "bench").glob("*.py") if path.name not in SHARED)
QUICK_TIMEOUT_S = 300  # each takes well under a minute on an idle 2-core machine


def test_every_bench_has_its_figures_named() -> None:
    assert sorted(FIGURES) == BENCHES


@pytest.mark.slow
@pytest.mark.parametrize("bench", BENCHES)
def test_the_bench_runs_quick_and_prints_its_figures(bench: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / bench), "--quick"],
        cwd=tmp_path,  # from any folder: the benches find the repository themselves
        capture_output=True,
        text=True,
        timeout=QUICK_TIMEOUT_S,
    )
    tail = f"\n--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}"
    assert done.returncode == 0, tail
    assert re.search(FIGURES[bench], done.stdout), tail
