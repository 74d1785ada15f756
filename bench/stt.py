"""Speech-to-text benchmark: faster-whisper tiny.en against Moonshine tiny-en on the same
recordings — word error rate and latency per recording length.

Run: `.venv/bin/python bench/stt.py [--runs N] [--show]`, or with `--quick` (two recordings, one
run, no noise: that it runs, not its figures). Both engines run in process as vocalizr builds them
from its settings (`VOCALIZR_STT_THREADS` applies), asked as chattr's live voice asks: English,
text only. Latency is the median of `--runs` calls per recording, the engines taking turns; WER is
over the words of all recordings (lower-cased, punctuation dropped).

Recordings: the real speech in `../shared/assets/speech_en_16k.wav` (8 s, one speaker) — its first
sentence, the whole of it, and two and four times over with pauses between — and lines spoken by
the Piper voice vocalizr ships (exact texts, 1.5-12 s). Then the WER of the recordings up to 12 s
with white noise (seeded) at 20, 10, 6 and 3 dB below the speech.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# bench/ off the import path, as in the other benches: `import vocalizr` finds the package.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).parent]

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import soundfile as sf  # noqa: E402

from vocalizr.settings import Settings  # noqa: E402
from vocalizr.transcription import WHISPER_RATE, SpeechToText, create_transcriber  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
ENGINES = ("faster-whisper", "moonshine")
# What speech_en_16k.wav says; it stops mid-phrase after "has been". Both engines hear "coat" in
# the whole clip but "cold" in the first sentence alone and under noise: "cold" is the phrase.
ASSET_TEXT = (
    "The holidays are a time of celebrating with loved ones, enjoying the festivities and "
    "muddling through Wisconsin's cold. But for many this year has been"
)
FIRST_SENTENCE_END_S = 5.86  # after "... Wisconsin's coat." (tests/chattr/voice/test_turn_end.py)
FIRST_SENTENCE = ASSET_TEXT.split(". ")[0]
NOISE_SNR_DB = (20, 10, 6, 3)
NOISE_UP_TO_S = 12.5
PIPER_LINES = (
    "Where were you born?",
    "What did you think of the battle at Waterloo?",
    "Tell me about your childhood, and how you first came to France as a young boy.",
    "The sea was calm this morning. We left the harbor before the sun came up. "
    "By noon the wind had turned against us. Still, nobody on board complained. "
    "We reached the island just as the light was fading.",
)


@dataclass(frozen=True)
class Recording:
    name: str
    samples: npt.NDArray[np.float32]
    text: str

    @property
    def seconds(self) -> float:
        return self.samples.size / WHISPER_RATE


def words(text: str) -> list[str]:
    """Lower-case words without punctuation; a hyphen splits, an apostrophe stays."""
    text = text.lower().replace("-", " ")
    return re.sub(r"[^a-z0-9' ]+", " ", text).split()


def word_errors(reference: str, heard: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, words in the reference): Levenshtein over
    words, one row at a time."""
    ref, hyp = words(reference), words(heard)
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        previous, row[0] = row[0], i
        for j, hyp_word in enumerate(hyp, start=1):
            previous, row[j] = (
                row[j],
                min(row[j] + 1, row[j - 1] + 1, previous + (ref_word != hyp_word)),
            )
    return row[-1], len(ref)


def quiet(seconds: float, seed: int) -> npt.NDArray[np.float32]:
    """A pause with a faint microphone noise floor (-54 dBFS)."""
    return (
        np.random.default_rng(seed).normal(0, 0.002, int(seconds * WHISPER_RATE)).astype(np.float32)
    )


def with_noise(samples: npt.NDArray[np.float32], snr_db: float) -> npt.NDArray[np.float32]:
    """White noise (seeded) at `snr_db` below the speech's power."""
    power = float(np.mean(np.square(samples, dtype=np.float64)))
    noise = np.random.default_rng(7).normal(0, np.sqrt(power / 10 ** (snr_db / 10)), samples.size)
    return np.clip(samples + noise, -1, 1).astype(np.float32)


def asset_recordings(quick: bool) -> list[Recording]:
    samples, rate = sf.read(ASSETS / "speech_en_16k.wav", dtype="float32", always_2d=True)
    assert rate == WHISPER_RATE, rate
    speech = np.asarray(samples.mean(axis=1), dtype=np.float32)
    whole = Recording("asset", speech, ASSET_TEXT)
    if quick:
        return [whole]

    def repeated(times: int) -> Recording:
        parts = [part for seed in range(times) for part in (speech, quiet(1.0, seed))][:-1]
        return Recording(f"asset x{times}", np.concatenate(parts), " ".join([ASSET_TEXT] * times))

    first = speech[: int(FIRST_SENTENCE_END_S * WHISPER_RATE)]
    return [
        Recording("asset, 1st sentence", first, FIRST_SENTENCE),
        whole,
        repeated(2),
        repeated(4),
    ]


def piper_recordings(lines: tuple[str, ...]) -> list[Recording]:
    """Each line spoken by vocalizr's Piper voice (no voice matching), at 16 kHz."""
    import soxr

    from vocalizr.engines.base import DEFAULT_VOICE
    from vocalizr.engines.piper import PiperEngine

    engine = PiperEngine(Settings(voice_matching=False))
    engine.load()
    recordings = []
    for index, line in enumerate(lines):
        voice = engine.synthesize(line, DEFAULT_VOICE, "en", 1.0)
        samples = soxr.resample(voice, engine.sample_rate, WHISPER_RATE).astype(np.float32)
        # A quarter second of room tone either side, as a microphone records a line.
        padded = np.concatenate([quiet(0.25, 10 + index), samples, quiet(0.25, 20 + index)])
        recordings.append(Recording(f"piper, {len(words(line))} words", padded, line))
    return recordings


def transcribe(engine: SpeechToText, samples: npt.NDArray[np.float32]) -> tuple[str, float]:
    started = time.perf_counter()
    transcript = engine.transcribe(samples, "en", None, 0.0, timestamps=False)
    return transcript.text, time.perf_counter() - started


def load_text() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="calls per recording and engine")
    parser.add_argument("--quick", action="store_true", help="two recordings, one run: it runs")
    parser.add_argument("--show", action="store_true", help="print what each engine heard")
    args = parser.parse_args()
    if args.quick:
        args.runs = 1
    print(f"speech-to-text benchmark: {args.runs} runs per recording and engine")
    print(f"{os.cpu_count()} CPU cores, load average {load_text()} (1, 5, 15 min) at start")

    recordings = asset_recordings(args.quick) + piper_recordings(
        PIPER_LINES[1:2] if args.quick else PIPER_LINES
    )
    recordings.sort(key=lambda recording: recording.seconds)
    env = Settings()
    engines: dict[str, SpeechToText] = {}
    for name in ENGINES:
        engine = create_transcriber(env.model_copy(update={"stt_engine": name, "stt_model": None}))
        assert engine is not None
        started = time.perf_counter()
        engine.load()
        print(f"  {name} ({engine.model_name}) loaded in {time.perf_counter() - started:.2f} s")
        engines[name] = engine

    header = f"  {'recording':<22} {'s':>5} " + " ".join(
        f"{name + ' ms':>17} {'WER':>5}" for name in ENGINES
    )
    print(header + f" {'ratio':>6}")
    errors = dict.fromkeys(ENGINES, 0)
    reference_words = 0
    ratios: list[float] = []
    rows = []
    for recording in recordings:
        latency: dict[str, list[float]] = {name: [] for name in ENGINES}
        heard: dict[str, str] = {}
        for name, engine in engines.items():
            heard[name], _ = transcribe(engine, recording.samples)  # warm: first-call costs out
        for _ in range(args.runs):
            for name, engine in engines.items():  # the engines take turns: load hits both alike
                latency[name].append(transcribe(engine, recording.samples)[1])
        medians = {name: statistics.median(times) for name, times in latency.items()}
        cells = []
        row: dict[str, object] = {"recording": recording.name, "seconds": recording.seconds}
        for name in ENGINES:
            wrong, count = word_errors(recording.text, heard[name])
            errors[name] += wrong
            cells.append(f"{medians[name] * 1000:>17.0f} {wrong / count:>5.0%}")
            row[name] = {"ms": round(medians[name] * 1000), "wer": round(wrong / count, 3)}
        reference_words += count
        ratio = medians[ENGINES[1]] / medians[ENGINES[0]]
        ratios.append(ratio)
        print(
            f"  {recording.name:<22} {recording.seconds:>5.1f} "
            + " ".join(cells)
            + f" {ratio:>6.2f}"
        )
        if args.show:
            for name in ENGINES:
                print(f"      {name}: {heard[name]}")
        rows.append(row)

    wer = {name: errors[name] / reference_words for name in ENGINES}
    print(
        f"WER over {reference_words} words: "
        + ", ".join(f"{name} {wer[name]:.1%}" for name in ENGINES)
    )
    noisy: dict[str, dict[str, float]] = {}
    short = [recording for recording in recordings if recording.seconds <= NOISE_UP_TO_S]
    for snr in () if args.quick else NOISE_SNR_DB:
        wrong_by = dict.fromkeys(ENGINES, 0)
        count = 0
        for recording in short:
            noise = with_noise(recording.samples, snr)
            for name, engine in engines.items():
                heard_text, _ = transcribe(engine, noise)
                wrong_by[name] += word_errors(recording.text, heard_text)[0]
                if args.show:
                    print(f"      {snr} dB {recording.name}, {name}: {heard_text}")
            count += len(words(recording.text))
        noisy[f"{snr} dB"] = {name: wrong_by[name] / count for name in ENGINES}
        print(
            f"WER with noise at {snr:>2} dB SNR over {count} words: "
            + ", ".join(f"{name} {wrong_by[name] / count:.1%}" for name in ENGINES)
        )
    print(f"load average {load_text()} at the end")
    print(
        f"latency {ENGINES[1]} / {ENGINES[0]}: median ratio {statistics.median(ratios):.2f} "
        f"(from {min(ratios):.2f} to {max(ratios):.2f} over {len(ratios)} recordings)"
    )
    print(json.dumps({"wer": wer, "wer_with_noise": noisy, "recordings": rows}))


if __name__ == "__main__":
    main()
