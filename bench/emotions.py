"""How well the emotion classifier labels sentences the LLM left untagged, and what it costs.

On the labelled sentences of tests/chattr/turn/emotion_samples.py (written apart from the
prototypes): exact labels, labels with the right face (one of visualizr's few expression shapes),
how many guesses are sure at each pair of thresholds, and the chosen pair's figures; then the
milliseconds one sentence takes (MiniLM on ONNX Runtime, one thread) and the prototypes' one-off
embedding.

    .venv/bin/python bench/emotions.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chatacter_common.emotions import NEUTRAL, expression_of
from chattr.knowledge.embeddings import load_default_embedder
from chattr.turn.emotions import EmotionClassifier, Guess
from tests.chattr.turn.emotion_samples import SAMPLES


def same_face(got: str, want: str) -> bool:
    return expression_of(got).shape == expression_of(want).shape


def sure(guess: Guess, min_score: float, min_margin: float) -> bool:
    weak = guess.score < min_score and guess.label != NEUTRAL
    return not weak and guess.margin >= min_margin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer timing rounds")
    args = parser.parse_args()
    classifier = EmotionClassifier(load_default_embedder())
    started = time.perf_counter()
    classifier.prepare()
    prepare_s = time.perf_counter() - started
    guesses = [(classifier.guess(text), label) for text, label in SAMPLES]
    total = len(guesses)
    exact = sum(g.label == want for g, want in guesses)
    face = sum(same_face(g.label, want) for g, want in guesses)
    print(f"{total} labelled sentences, 28 labels; nearest label always taken:")
    print(f"  exact {exact}/{total} ({exact / total:.0%}), right face {face}/{total}")
    print("min_score min_margin   sure   exact  right face  right, unsure as neutral")
    for min_score in (0.0, 0.3, 0.35, 0.4):
        for min_margin in (0.0, 0.02, 0.03, 0.05):
            chosen = [(g, want) for g, want in guesses if sure(g, min_score, min_margin)]
            right = sum(g.label == want for g, want in chosen)
            faces = sum(same_face(g.label, want) for g, want in chosen)
            overall = right + sum(
                want == NEUTRAL for g, want in guesses if not sure(g, min_score, min_margin)
            )
            mark = " <- chosen" if (min_score, min_margin) == (0.3, 0.03) else ""
            print(
                f"{min_score:9.2f} {min_margin:10.2f} {len(chosen):6d} {right:7d} {faces:11d}"
                f"  {overall}/{total}{mark}"
            )
    labels = [classifier.label(text) for text, _ in SAMPLES]
    sure_right = sum(got == want for got, (_, want) in zip(labels, SAMPLES, strict=True) if got)
    covered = sum(got is not None for got in labels)
    print(
        f"chosen: sure {covered}/{total}, right {sure_right}/{covered}; "
        f"always neutral would be right {sum(w == NEUTRAL for _, w in SAMPLES)}/{total}"
    )
    rounds = 2 if args.quick else 10
    times = []
    for _ in range(rounds):
        for text, _ in SAMPLES:
            tick = time.perf_counter()
            classifier.label(text)
            times.append(time.perf_counter() - tick)
    print(
        f"one sentence: p50 {statistics.median(times) * 1000:.1f} ms "
        f"(max {max(times) * 1000:.1f} ms); prototypes embedded once in {prepare_s:.2f} s"
    )


if __name__ == "__main__":
    main()
