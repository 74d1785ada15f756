"""A spoken turn: from the end of the person's speech to the reply's first audio and first video.

The person's speech is the real speech asset (8 s) with silence around it, streamed in 100 ms
chunks as a microphone sends them, through the page's own listening (`LiveConversation`): voice
activity (Silero) ends an utterance after a 0.55 s pause, and what was said is transcribed ahead
from the first 0.2 s of that pause (the "guess"), so the reply does not wait out the whole pause.
The waits from the true end of speech until the guess and until the utterance ends are printed
on their own (target <= 0.6 s). The transcript is a chattr turn with media (real vocalizr and
visualizr processes, CPU engines), the fake LLM at Groq's pace (150 ms to the first token, 300
tokens/s). Marks are seconds after the end of speech; medians of --runs turns after one warm-up.
Targets on this machine: first audio <= 1.2 s, first video <= 1.8 s. For scale: OpenAvatarChat
reports 2.2 s for the same path on an RTX 4090.

    .venv/bin/python bench/voice_turn.py [--runs 5]
    .venv/bin/python bench/voice_turn.py --quick   # one turn, no warm-up, no knowledge
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench.stack`, from any folder

from bench.stack import ASSETS, CHARACTER, StackFailed, bench_stack, load, quick_characters
from chattr.testing.fake_llm import FakeLLMServer
from chattr.turn.service import ChatService
from chattr.voice.live import LiveConversation
from chattr.voice.utterances import Utterance
from chattr.voice.vad import VAD_RATE

SPEECH = ASSETS / "speech_en_16k.wav"
FIRST_TOKEN_S = 0.150
TOKENS_PER_S = 300.0
# The voice-activity wait that holds the reply up is the one until work on what was said starts
# (the guess); the utterance's formal end (vad_wait) only gates the turn when it comes after the
# transcript, and `transcribed` shows whether it did.
TARGETS = {"guess_wait": 0.6, "first_audio": 1.2, "first_video": 1.8}
BEFORE_S, AFTER_S = 0.5, 1.5  # silence around the speech
CHUNK_S = 0.1  # what a browser's microphone stream sends at a time
KNOWLEDGE_TIMEOUT_S = 900.0
TURN_TIMEOUT_S = 180.0
REPLY = (
    "Ah, the holidays, a fine season for a soldier. "
    "I spent more of them in the field than at home, but I never forgot the people I loved. "
    "Tell me, how will you celebrate this year?"
)


@dataclass
class SpokenTurn:
    """Seconds after the true end of speech (None where it never happened)."""

    vad_wait: float
    transcribed: float
    guess_wait: float | None = None
    first_text: float | None = None
    first_audio: float | None = None
    first_video: float | None = None
    transcript: str = ""
    problem: str = ""


def microphone_audio() -> tuple[npt.NDArray[np.float32], int, float]:
    """The speech asset with silence (a faint noise floor) around it; and where speech ends."""
    samples, rate = sf.read(SPEECH, dtype="float32", always_2d=True)
    speech = samples.mean(axis=1)
    noise = np.random.default_rng(1).normal(0, 0.002, int((BEFORE_S + AFTER_S) * rate))
    split = int(BEFORE_S * rate)
    audio = np.concatenate([noise[:split], speech, noise[split:]]).astype(np.float32)
    return audio, int(rate), BEFORE_S + speech.size / rate


@dataclass
class Listened:
    utterance: Utterance
    end_wait: float  # end of speech → the detector ends the utterance (the page's 0.55 s pause)
    guess: Utterance | None  # what was transcribed ahead, when it is exactly the utterance
    guess_wait: float | None  # end of speech → that guess


def listen(audio: npt.NDArray[np.float32], rate: int, speech_end_s: float) -> Listened:
    """Stream the audio through the page's live pipeline (`LiveConversation`, its voice activity
    and its guess on a pause) as if live; the utterance and the waits.

    A wait is the audio fed past the true end of speech until the event, plus the time scoring
    that last chunk took (live audio arrives in real time).
    """
    live = LiveConversation()
    chunk = int(CHUNK_S * rate)
    guess: Utterance | None = None
    guess_wait: float | None = None
    for offset in range(0, audio.size, chunk):
        began = time.perf_counter()
        _, ready = live.hear(rate, audio[offset : offset + chunk])
        candidate = live.pause_to_guess_on()
        fed_s = (offset + chunk) / rate
        wait = fed_s - speech_end_s + time.perf_counter() - began
        if candidate is not None:
            guess, guess_wait = candidate, wait
        utterance = live.next_utterance() if ready else None
        if utterance is not None and utterance.ended_s > speech_end_s - 0.5:
            same = guess is not None and np.array_equal(guess.samples, utterance.samples)
            return Listened(utterance, wait, guess if same else None, guess_wait if same else None)
    raise RuntimeError("voice activity never ended the utterance")


def wav(samples: npt.NDArray[np.float32], rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


async def spoken_turn(service: ChatService, session_id: str) -> SpokenTurn:
    audio, rate, speech_end_s = microphone_audio()
    heard = listen(audio, rate, speech_end_s)
    assert service.media is not None and service.media.vocalizr is not None
    # From here on wall-clock. Transcription starts at the guess (if the pause ended the
    # utterance as guessed), else once the utterance ends; the turn starts when both the
    # transcript is there and the utterance has ended, as in the page.
    first_wait = heard.guess_wait if heard.guess is not None else heard.end_wait
    assert first_wait is not None
    origin = time.perf_counter() - first_wait
    said = heard.guess or heard.utterance
    transcript = await service.media.vocalizr.transcribe(
        wav(said.samples, VAD_RATE), "turn.wav", "en"
    )
    ended = origin + heard.end_wait
    if time.perf_counter() < ended:
        await asyncio.sleep(ended - time.perf_counter())
    result = SpokenTurn(
        heard.end_wait,
        time.perf_counter() - origin,
        guess_wait=heard.guess_wait,
        transcript=transcript,
    )
    async for state in service.run(transcript, CHARACTER, session_id, media=True):
        now = time.perf_counter() - origin
        if state.text and result.first_text is None:
            result.first_text = now
        if result.first_audio is None and any(s.audio_url for s in state.segments):
            result.first_audio = now
        if result.first_video is None and any(s.video_url for s in state.segments):
            result.first_video = now
        if state.done and state.errors:
            result.problem = "; ".join(f"{e.service}: {e.detail}" for e in state.errors)
    return result


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ms(value: float | None) -> str:
    return "    -" if value is None else f"{value * 1000:5.0f}"


async def run_benchmark(service: ChatService, llm: FakeLLMServer, runs: int, warmups: int) -> int:
    turns: list[SpokenTurn] = []
    print(f"\n{runs} runs after {'one' if warmups else 'no'} warm-up; {load()}", flush=True)
    print("             guess  vad_wait  transcribed  first_text  first_audio  first_video  (ms)")
    for run in range(1 - warmups, runs + 1):
        llm.script(REPLY)
        turn = await asyncio.wait_for(spoken_turn(service, f"bench-voice-{run}"), TURN_TIMEOUT_S)
        label = "warm-up" if run == 0 else f"run {run}"
        print(
            f"  {label:8s}  {ms(turn.guess_wait)}   {ms(turn.vad_wait)}     "
            f"{ms(turn.transcribed)}       "
            f"{ms(turn.first_text)}       {ms(turn.first_audio)}        {ms(turn.first_video)}"
            f"{'  ' + turn.problem if turn.problem else ''}",
            flush=True,
        )
        if run == 1 - warmups:
            print(f"  transcript: {turn.transcript!r}")
        if run > 0:
            turns.append(turn)
    print(f"\nmedians of {runs} runs, ms after the end of speech:")
    measures = ("guess_wait", "vad_wait", "transcribed", "first_text", "first_audio")
    for measure in (*measures, "first_video"):
        value = median([getattr(t, measure) for t in turns])
        target = TARGETS.get(measure)
        verdict = ""
        if target is not None and value is not None:
            verdict = f"target <= {target * 1000:.0f}: {'met' if value <= target else 'MISSED'}"
        print(f"  {measure:12s} {ms(value)}   {verdict}")
    print(f"\n{load()}")
    failed = [t for t in turns if t.first_audio is None or t.first_video is None]
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured turns (median)")
    parser.add_argument("--quick", action="store_true", help="one turn: that it still runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 1
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"voice turn benchmark; {load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="chattr-bench-voice-") as tmp:
        work = Path(tmp)
        quick = {"characters_dir": quick_characters(work)} if args.quick else {}
        try:
            with bench_stack(
                work,
                first_token_s=FIRST_TOKEN_S,
                tokens_per_s=TOKENS_PER_S,
                knowledge_timeout_s=KNOWLEDGE_TIMEOUT_S,  # embedding is slow on a busy machine
                **quick,
            ) as stack:
                print(f"services ready in {stack.ready_s:.1f} s", flush=True)

                async def bench() -> int:
                    try:
                        warmups = 0 if args.quick else 1
                        return await run_benchmark(stack.service, stack.llm, args.runs, warmups)
                    finally:
                        await stack.fanout.aclose()

                return asyncio.run(bench())
        except StackFailed as failure:
            print(failure)
            return 1


if __name__ == "__main__":
    raise SystemExit(main())
