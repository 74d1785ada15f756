"""A reply's first sentence (`priority: first`) never waits for a `normal` synthesis already
running on the Piper engine: that one is stopped, the first sentence is spoken, and the stopped
one is run again from the start, its caller getting all its speech and words, later.

The real Piper voice and the real service; each wait is on the engine's own state (its run
stoppable now), never on a clock. A synthesis run again is compared with unstopped ones of the
same text within Piper's own randomness: its durations are drawn (noise_w), and 12 syntheses of
LONG measured 13.22-13.58 s, 2.7% from shortest to longest (standard deviation 0.74%), so a run
again whole is within 5% of their median, and one cut short by a sentence or more is far out.
"""

from __future__ import annotations

import io
import re
import statistics
import threading
import time
from typing import Any

import httpx
import pytest
import soundfile as sf

from chatacter_common.service import JobQueue, Preempted, StopSignal
from tests.vocalizr.support import Server
from vocalizr.engines.piper import PiperEngine

# Three of Piper's sentences, about 13 s of speech: a synthesis long enough to stop midway.
LONG = (
    "The old sailor walked along the harbour every morning and counted the boats one by one. "
    "He knew each of them by the colour of its sail and the sound of its rigging in the wind. "
    "When a boat was missing he waited on the pier until it came home, however late it was."
)
FIRST = "Vive la France."
TOLERANCE = 0.05  # of the unstopped syntheses' median duration (see the module's docstring)
WAIT_S = 60.0  # a bound for a broken service, never reached when it works


def within_piper_spread(duration_s: float, references: list[float]) -> bool:
    middle = statistics.median(references)
    return abs(duration_s - middle) <= TOLERANCE * middle


def stoppable_synthesis(jobs: JobQueue) -> StopSignal:
    """The signal of the synthesis running now, once its engine can stop it."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for job in jobs.running:
            if job.stop is not None and job.stop.stoppable.wait(WAIT_S):
                return job.stop
        time.sleep(0.001)  # until the request has reached a worker
    raise AssertionError("no stoppable synthesis started")


def preemptions(client: httpx.Client) -> float:
    found = re.search(
        r'^vocalizr_preemptions_total\{engine="piper"\} (\S+)$', client.get("/metrics").text, re.M
    )
    return float(found.group(1)) if found else 0.0


def test_a_synthesis_stopped_raises_preempted_and_the_voice_then_speaks_it_whole(
    piper_server: Server,
) -> None:
    engine: PiperEngine = piper_server.app.state.service.engine
    assert engine.stoppable
    references = [
        engine.synthesize_with_words(LONG, "default", "en", 1.0).samples.size for _ in range(3)
    ]
    stop = StopSignal()
    outcome: dict[str, Any] = {}

    def synthesize() -> None:
        try:
            outcome["speech"] = engine.synthesize_with_words(LONG, "default", "en", 1.0, stop=stop)
        except Exception as error:
            outcome["error"] = error

    worker = threading.Thread(target=synthesize)
    worker.start()
    assert stop.stoppable.wait(WAIT_S)
    stop.request()
    worker.join(WAIT_S)
    assert isinstance(outcome.get("error"), Preempted), outcome
    assert not stop.stoppable.is_set()

    # The shared session is unharmed, and the same signal, cleared, lets the next run through.
    stop.stopped()
    again = engine.synthesize_with_words(LONG, "default", "en", 1.0, stop=stop)
    assert within_piper_spread(again.samples.size, [float(n) for n in references])
    assert again.word_timing == "aligned"
    assert [word.word for word in again.words] == LONG.split()


def test_a_first_sentence_stops_a_running_synthesis_that_then_returns_all_its_speech(
    piper_server: Server,
) -> None:
    jobs = piper_server.app.state.service.jobs
    with piper_server.client() as client:
        unstopped = [
            client.post("/v1/speech", json={"text": LONG, "voice": "ada"}).json()["duration_s"]
            for _ in range(3)
        ]
        counted = preemptions(client)
    answers: dict[str, dict[str, Any]] = {}
    finished: list[str] = []

    def speak(name: str, text: str, priority: str) -> None:
        with piper_server.client() as own:
            reply = own.post(
                "/v1/speech", json={"text": text, "voice": "ada", "priority": priority}
            )
        assert reply.status_code == 200, reply.text
        answers[name] = reply.json()
        finished.append(name)

    long = threading.Thread(target=speak, args=("long", LONG, "normal"))
    long.start()
    stoppable_synthesis(jobs)
    first = threading.Thread(target=speak, args=("first", FIRST, "first"))
    first.start()
    for thread in (first, long):
        thread.join(WAIT_S)

    assert finished == ["first", "long"]
    assert [w["word"] for w in answers["first"]["words"]] == FIRST.split()
    stopped = answers["long"]
    assert within_piper_spread(stopped["duration_s"], unstopped)
    assert stopped["word_timing"] == "aligned"
    assert [w["word"] for w in stopped["words"]] == LONG.split()
    assert stopped["words"][-1]["end_s"] <= stopped["duration_s"]
    audio = httpx.get(stopped["url"])
    assert audio.status_code == 200
    info = sf.info(io.BytesIO(audio.content))  # the file holds all of it too
    assert info.frames / info.samplerate == pytest.approx(stopped["duration_s"], abs=0.01)
    with piper_server.client() as client:
        assert preemptions(client) == counted + 1
