"""Whole stack, real processes: fake LLM, chattr, vocalizr, visualizr; driven by gradio_client."""

from __future__ import annotations

import contextlib
import http.server
import io
import threading
import time
import wave
from pathlib import Path

import av
import httpx
import pytest

from chattr.media.local_stack import LocalService, LocalStack
from chattr.testing.fake_llm import FakeLLMServer

from ..conftest import StartApp
from .conftest import auth, start_service

pytestmark = pytest.mark.slow

THREE_SENTENCES = (
    "I crossed the Alps in the spring of 1800 with forty thousand men. "
    "The snow was deep and the guns had to be dragged on sledges. "
    "At Marengo we turned a defeat into a victory by evening."
)


def wav_duration(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as reader:
        return float(reader.getnframes() / reader.getframerate())


def decode_mp4(data: bytes) -> tuple[int, float, float]:
    """Decode every frame; return (video frames, video seconds, audio seconds)."""
    with av.open(io.BytesIO(data), mode="r") as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        frames = 0
        samples = 0
        for frame in container.decode(video, audio):
            if isinstance(frame, av.VideoFrame):
                frames += 1
            elif isinstance(frame, av.AudioFrame):
                samples += frame.samples
        rate = float(video.average_rate or 25)
        return frames, frames / rate, samples / audio.codec_context.sample_rate


def test_a_three_sentence_reply_gets_speech_and_video_per_sentence_in_order(
    start_app: StartApp, llm: FakeLLMServer, media_stack: LocalStack
) -> None:
    assert media_stack.vocalizr and media_stack.visualizr
    app = start_app(media_stack.vocalizr.url, media_stack.visualizr.url)
    llm.script(THREE_SENTENCES)
    result = app.client().predict("Tell me about Marengo.", "napoleon", "", True, api_name="/chat")

    assert result["text"] == THREE_SENTENCES
    assert result["errors"] == []
    segments = result["segments"]
    assert [s["text"] for s in segments] == [
        "I crossed the Alps in the spring of 1800 with forty thousand men.",
        "The snow was deep and the guns had to be dragged on sledges.",
        "At Marengo we turned a defeat into a victory by evening.",
    ]
    durations = []
    for segment in segments:
        audio = httpx.get(segment["audio_url"])
        assert audio.status_code == 200
        durations.append(wav_duration(audio.content))
        video = httpx.get(segment["video_url"])
        assert video.status_code == 200
        frames, video_s, audio_s = decode_mp4(video.content)
        assert frames > 0 and abs(video_s - durations[-1]) < 0.1
    # Each sentence has its own clip.
    assert len(set(s["audio_url"] for s in segments)) == 3

    joined = httpx.get(result["audio_url"])
    assert joined.status_code == 200
    assert wav_duration(joined.content) == pytest.approx(sum(durations), abs=0.002)

    whole = httpx.get(result["video_url"])
    assert whole.status_code == 200
    frames, video_s, audio_s = decode_mp4(whole.content)
    assert video_s == pytest.approx(sum(durations), abs=0.05 * len(durations))
    # Each sentence's sound is fitted to its own video: the two tracks end together (the
    # sound padded to a whole AAC frame once), so no sentence drifts out of lip-sync.
    assert video_s <= audio_s < video_s + 1024 / 44100 + 0.001


def test_a_turn_abandoned_mid_media_leaves_no_pieces_behind(
    start_app: StartApp, llm: FakeLLMServer, media_stack: LocalStack
) -> None:
    assert media_stack.vocalizr and media_stack.visualizr
    app = start_app(media_stack.vocalizr.url, media_stack.visualizr.url)
    media_dir = app.settings.data_dir / "media"
    client = app.client()
    llm.script(" ".join(f"This is sentence number {i} of a long answer." for i in range(1, 9)))
    llm.state.tokens_per_s = 20  # still streaming when the first video is in
    try:
        job = client.submit("Talk to me.", "napoleon", "", True, api_name="/chat")
        deadline = time.monotonic() + 60
        while not list(media_dir.glob(".*.mp4")):  # the first video, downloaded to be joined
            assert time.monotonic() < deadline, "no video arrived"
            time.sleep(0.05)
        job.cancel()
        deadline = time.monotonic() + 30
        while leftovers := list(media_dir.glob(".*")):
            assert time.monotonic() < deadline, f"left behind: {leftovers}"
            time.sleep(0.1)
    finally:
        llm.state.tokens_per_s = 0


def test_text_only_when_media_is_switched_off(
    start_app: StartApp, llm: FakeLLMServer, media_stack: LocalStack
) -> None:
    assert media_stack.vocalizr and media_stack.visualizr
    app = start_app(media_stack.vocalizr.url, media_stack.visualizr.url)
    llm.script(THREE_SENTENCES)
    result = app.client().predict("Hello", "napoleon", "", False, api_name="/chat")
    assert result["text"] == THREE_SENTENCES
    assert result["segments"] == [] and result["audio_url"] is None


def test_vocalizr_killed_mid_turn_keeps_the_text_and_the_next_turn_degrades_fast(
    start_app: StartApp,
    llm: FakeLLMServer,
    media_stack: LocalStack,
    characters_dir: Path,
    tmp_path: Path,
) -> None:
    assert media_stack.visualizr
    vocalizr = start_service("vocalizr", characters_dir, tmp_path)
    app = start_app(vocalizr.url, media_stack.visualizr.url, media_retries=1, breaker_threshold=2)
    client = app.client()
    long_reply = " ".join(f"This is sentence number {i} of a long answer." for i in range(1, 9))
    llm.script(long_reply)
    llm.state.tokens_per_s = 20  # slow enough to kill the service while the reply streams
    try:
        job = client.submit("Talk to me.", "napoleon", "", True, api_name="/chat")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            outputs = job.outputs()
            if outputs and any(s["audio_url"] for s in outputs[-1]["segments"]):
                break
            time.sleep(0.05)
        else:
            pytest.fail("no audio arrived before the kill")
        vocalizr.stop()
        result = job.result(timeout=120)
    finally:
        llm.state.tokens_per_s = 0
        vocalizr.stop()

    assert result["text"] == long_reply  # the text is never lost
    assert any(s["audio_url"] for s in result["segments"])  # what was made before the kill stays
    assert any(e["service"] == "vocalizr" for e in result["errors"])
    assert result["audio_url"] is None  # not every sentence has speech: no joined audio

    started = time.monotonic()
    llm.script("Still here. The text comes through without a voice.")
    after = client.predict(
        "Are you there?", "napoleon", result["session_id"], True, api_name="/chat"
    )
    elapsed = time.monotonic() - started
    assert after["text"].startswith("Still here.")
    errors = {e["service"]: e["detail"] for e in after["errors"]}
    assert "skipped" in errors["vocalizr"]  # the circuit is open: not even tried
    assert elapsed < 3.0
    # The turn was still written to memory.
    assert app.service.memory.recent(result["session_id"], "napoleon")[-1].user == "Are you there?"


def test_visualizr_busy_with_503_is_retried_then_the_turn_degrades_to_audio(
    start_app: StartApp,
    llm: FakeLLMServer,
    media_stack: LocalStack,
    characters_dir: Path,
    tmp_path: Path,
) -> None:
    assert media_stack.vocalizr
    held, release = _held_audio()
    visualizr = start_service(
        "visualizr",
        characters_dir,
        tmp_path,
        max_queue="1",
        workers="1",
        allowed_audio_hosts=f"127.0.0.1:{held.server_port}",
        fetch_timeout_s="600",
    )
    try:
        # Occupy its one place with a request whose audio never finishes coming (its fetch counts
        # against the queue bound), so every other request meets a 503 for as long as the test
        # wants. A long render did it before, and ended within the turn on a fast machine (ten
        # minutes of speech: 35 s).
        def occupy() -> None:
            # Ends with an error once the audio is cut off: that is expected.
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(
                    visualizr.url + "/v1/videos",
                    headers=auth(visualizr),
                    json={
                        "audio_url": f"http://127.0.0.1:{held.server_port}/long.wav",
                        "portrait": "napoleon",
                    },
                    timeout=620,
                )

        thread = threading.Thread(target=occupy)
        thread.start()
        _wait_until_busy(visualizr)
        app = start_app(media_stack.vocalizr.url, visualizr.url, media_retries=2)
        llm.script("The guard dies but does not surrender. Nor does it wait for video.")
        result = app.client().predict("Speak!", "napoleon", "", True, api_name="/chat")
        busy = _metric(visualizr, 'visualizr_errors_total{code="queue_full"}')
    finally:
        release.set()
        visualizr.stop()
        held.shutdown()
    thread.join(30)

    # Each sentence's video was tried three times (two retries), all refused as busy.
    assert busy == 3 * len(result["segments"])
    assert result["text"] == "The guard dies but does not surrender. Nor does it wait for video."
    assert all(s["audio_url"] for s in result["segments"])  # text + audio
    assert all(s["video_url"] is None for s in result["segments"])
    assert result["audio_url"] is not None and result["video_url"] is None
    errors = {e["service"]: e["detail"] for e in result["errors"]}
    assert "HTTP 503, 3 tries" in errors["visualizr"]


def _held_audio() -> tuple[http.server.ThreadingHTTPServer, threading.Event]:
    """A server on a free port whose every answer sends its headers and a few bytes, then
    nothing more until the event is set; serving in a daemon thread."""
    release = threading.Event()

    class Held(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"RIFF")
            self.wfile.flush()
            release.wait()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Held)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, release


def _metric(service: LocalService, name: str) -> float:
    for line in httpx.get(service.url + "/metrics", headers=auth(service)).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def _wait_until_busy(service: LocalService) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        metrics = httpx.get(service.url + "/metrics", headers=auth(service)).text
        for line in metrics.splitlines():
            if line.startswith("visualizr_queue_depth") and float(line.split()[-1]) >= 1:
                return
        time.sleep(0.05)
    raise RuntimeError("visualizr never became busy")
