"""A spoken turn: from the end of the person's speech to the reply's first audio and first video.

The person's speech is a recording (default: the speech asset's finished sentence, 5.9 s, with
silence around it), streamed in 100 ms chunks as a microphone sends them, through the page's own
listening (`LiveConversation`): voice activity (Silero) and the turn model (Smart Turn v3.2) end
each turn, and what was said is transcribed ahead from the first 0.1 s of silence (the "guess").
Each turn is a chattr turn with media (real vocalizr and visualizr processes, CPU engines), the
fake LLM at Groq's pace (150 ms to the first token, 300 tokens/s). Marks are seconds after the
end of speech (for a recording of your own: voice activity's end of speech, which trails the
voice by about 0.15 s); medians of --runs plays after one warm-up. Targets on this machine
(issue 25): first audio <= 0.9 s, first video <= 1.3 s. For scale: OpenAvatarChat reports 2.2 s
for the same path on an RTX 4090. The last line printed is one JSON object:
{"turns": [the transcripts of one play], "first_audio_ms": ..., "first_video_ms": ...}.

    .venv/bin/python bench/voice_turn.py [--runs 5] [--recording FILE.wav]
    .venv/bin/python bench/voice_turn.py --quick   # one play, no warm-up, no knowledge
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
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
from chattr.voice.turn_end import load_turn_model
from chattr.voice.utterances import Utterance
from chattr.voice.vad import VAD_RATE

SPEECH = ASSETS / "speech_en_16k.wav"
FIRST_TOKEN_S = 0.150
TOKENS_PER_S = 300.0
# The voice-activity wait that holds the reply up is the one until work on what was said starts
# (the guess); the utterance's formal end (vad_wait) only gates the turn when it comes after the
# transcript, and `transcribed` shows whether it did.
TARGETS = {"guess_wait": 0.45, "first_audio": 0.9, "first_video": 1.3}
BEFORE_S, AFTER_S = 0.5, 1.5  # silence around the speech
SENTENCE_S = 5.86  # the asset's finished sentence ("... Wisconsin's coat."); then it trails off
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
    """Seconds after the end of speech (None where it never happened)."""

    vad_wait: float
    transcribed: float
    guess_wait: float | None = None
    first_text: float | None = None
    first_audio: float | None = None
    first_video: float | None = None
    transcript: str = ""
    problem: str = ""


def microphone_audio() -> tuple[npt.NDArray[np.float32], int, float]:
    """The speech asset's finished sentence with silence (a faint noise floor) around it; and
    where speech ends."""
    samples, rate = sf.read(SPEECH, dtype="float32", always_2d=True)
    speech = samples.mean(axis=1)[: int(SENTENCE_S * rate)]
    noise = np.random.default_rng(1).normal(0, 0.002, int((BEFORE_S + AFTER_S) * rate))
    split = int(BEFORE_S * rate)
    audio = np.concatenate([noise[:split], speech, noise[split:]]).astype(np.float32)
    return audio, int(rate), BEFORE_S + 5.82  # its last sound


def recording_audio(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    """Any recording, mono, with 1.5 s of silence after it so its last turn can end."""
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    tail = np.zeros(int(AFTER_S * rate) + int(2.5 * rate), dtype=np.float32)
    return np.concatenate([samples.mean(axis=1), tail]).astype(np.float32), int(rate)


@dataclass
class Listened:
    utterance: Utterance
    end_wait: float  # end of speech → the turn ended (by meaning or the fallback)
    guess: Utterance | None  # what was transcribed ahead, when it is exactly the utterance
    guess_wait: float | None  # end of speech → that guess


def listen(
    audio: npt.NDArray[np.float32], rate: int, speech_end_s: float | None = None
) -> list[Listened]:
    """Stream the audio through the page's live pipeline (`LiveConversation`: voice activity,
    the turn model, the guess on a pause) as if live; each turn and its waits.

    A wait is the audio fed past the end of speech (`speech_end_s` for a one-turn recording
    whose truth is known, else voice activity's) until the event, plus the time that last chunk
    took to process (live audio arrives in real time).
    """
    live = LiveConversation(turn_model=load_turn_model())
    chunk = int(CHUNK_S * rate)
    guess: Utterance | None = None
    guess_at_s = 0.0  # stream time plus processing time of the guess
    turns: list[Listened] = []
    for offset in range(0, audio.size, chunk):
        began = time.perf_counter()
        _, ready = live.hear(rate, audio[offset : offset + chunk])
        candidate = live.pause_to_guess_on()
        fed_s = (offset + chunk) / rate + time.perf_counter() - began
        if candidate is not None:
            guess, guess_at_s = candidate, fed_s
        while ready and (utterance := live.next_utterance()) is not None:
            end = speech_end_s if speech_end_s is not None else utterance.ended_s
            # The same utterance, as the page tells (`LiveConversation.take_guess`).
            same = guess is not None and (guess.started_s, guess.ended_s) == (
                utterance.started_s,
                utterance.ended_s,
            )
            turns.append(
                Listened(
                    utterance,
                    fed_s - end,
                    guess if same else None,
                    guess_at_s - end if same else None,
                )
            )
            guess = None
    if not turns:
        raise RuntimeError("no turn was heard in the recording")
    return turns


def wav(samples: npt.NDArray[np.float32], rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


async def spoken_turn(service: ChatService, heard: Listened, session_id: str) -> SpokenTurn:
    """One heard turn, answered with media; marks from the end of its speech."""
    assert service.media is not None and service.media.vocalizr is not None
    # From here on wall-clock. Transcription starts at the guess (if the turn ended as
    # guessed), else once the turn ends; the turn starts when both the transcript is there and
    # the turn has ended, as in the page.
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


async def play(service: ChatService, heard: list[Listened], session_id: str) -> list[SpokenTurn]:
    """One play of the recording: its turns in order, in one conversation."""
    return [await spoken_turn(service, turn, session_id) for turn in heard]


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ms(value: float | None) -> str:
    return "    -" if value is None else f"{value * 1000:5.0f}"


async def run_benchmark(
    service: ChatService, llm: FakeLLMServer, heard: list[Listened], runs: int, warmups: int
) -> int:
    turns: list[SpokenTurn] = []
    transcripts: list[str] = []
    print(f"\n{runs} plays after {'one' if warmups else 'no'} warm-up; {load()}", flush=True)
    print(
        "             turn guess  end_wait  transcribed  first_text  first_audio  first_video (ms)"
    )
    for run in range(1 - warmups, runs + 1):
        llm.script(*([REPLY] * len(heard)))
        played = await asyncio.wait_for(
            play(service, heard, f"bench-voice-{run}"), TURN_TIMEOUT_S * len(heard)
        )
        label = "warm-up" if run == 0 else f"play {run}"
        for index, turn in enumerate(played, 1):
            print(
                f"  {label:8s} {index:4d} {ms(turn.guess_wait)}   {ms(turn.vad_wait)}     "
                f"{ms(turn.transcribed)}       "
                f"{ms(turn.first_text)}       {ms(turn.first_audio)}        "
                f"{ms(turn.first_video)}{'  ' + turn.problem if turn.problem else ''}",
                flush=True,
            )
        if run == 1 - warmups:
            transcripts = [t.transcript.strip() for t in played]
            for index, text in enumerate(transcripts, 1):
                print(f"  heard, turn {index}: {text!r}")
        if run > 0:
            turns.extend(played)
    print(f"\nmedians of {len(turns)} turns in {runs} plays, ms after the end of speech:")
    measures = ("guess_wait", "vad_wait", "transcribed", "first_text", "first_audio")
    for measure in (*measures, "first_video"):
        value = median([getattr(t, measure) for t in turns])
        target = TARGETS.get(measure)
        verdict = ""
        if target is not None and value is not None:
            verdict = f"target <= {target * 1000:.0f}: {'met' if value <= target else 'MISSED'}"
        print(f"  {measure:12s} {ms(value)}   {verdict}")
    print(f"\n{load()}")
    audio_ms, video_ms = (
        median([getattr(t, m) for t in turns]) for m in ("first_audio", "first_video")
    )
    print(
        json.dumps(
            {
                "turns": transcripts,
                "first_audio_ms": None if audio_ms is None else round(audio_ms * 1000),
                "first_video_ms": None if video_ms is None else round(video_ms * 1000),
            }
        )
    )
    failed = [t for t in turns if t.first_audio is None or t.first_video is None]
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured turns (median)")
    parser.add_argument("--quick", action="store_true", help="one play: that it still runs")
    parser.add_argument(
        "--recording", type=Path, help="a WAV (any rate) to play instead of the speech asset"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 1
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"voice turn benchmark; {load()}", flush=True)
    if args.recording is not None:
        heard = listen(*recording_audio(args.recording))
    else:
        audio, rate, speech_end_s = microphone_audio()
        heard = listen(audio, rate, speech_end_s)
    print(f"heard {len(heard)} turn(s) in the recording", flush=True)
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
                        return await run_benchmark(
                            stack.service, stack.llm, heard, args.runs, warmups
                        )
                    finally:
                        await stack.fanout.aclose()

                return asyncio.run(bench())
        except StackFailed as failure:
            print(failure)
            return 1


if __name__ == "__main__":
    raise SystemExit(main())
