"""Scripts as users write them: the example scripts, and 16 clients at once."""

from __future__ import annotations

import concurrent.futures
import re
import subprocess
import sys
import time
import uuid
import wave
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from gradio_client import Client

from chattr.media.local_stack import LocalStack
from chattr.testing.fake_llm import FakeLLMServer

from ..conftest import REPO, StartApp

pytestmark = pytest.mark.slow


def test_the_example_script_holds_a_conversation_and_downloads_the_media(
    start_app: StartApp, llm: FakeLLMServer, media_stack: LocalStack, tmp_path: Path
) -> None:
    assert media_stack.vocalizr and media_stack.visualizr
    app = start_app(media_stack.vocalizr.url, media_stack.visualizr.url)
    llm.script("Pleased to meet you, Ada. Physics is my great love.")
    out = tmp_path / "replies"
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "chat_from_script.py"),
            "--url",
            app.url,
            "--character",
            "einstein",
            "--out",
            str(out),
            "Hello, my name is Ada.",
            "What is my name?",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Pleased to meet you, Ada." in run.stdout
    assert "Your name is Ada" in run.stdout  # the second turn remembered the first
    for turn in (1, 2):
        with wave.open(str(out / f"turn{turn}.wav")) as audio:
            assert audio.getnframes() > 0
        with av.open(str(out / f"turn{turn}.mp4")) as video:
            assert video.streams.video and video.streams.audio
            assert sum(1 for _ in video.decode(video=0)) > 0


def test_unknown_character_in_the_script_says_which_exist(start_app: StartApp) -> None:
    app = start_app()
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "chat_from_script.py"),
            "--url",
            app.url,
            "--character",
            "napolean",
            "--text-only",
            "Hi",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert "no character 'napolean'; known:" in run.stderr and "napoleon" in run.stderr


def test_the_scene_script_streams_each_reply_under_its_speaker_with_its_media(
    start_app: StartApp, llm: FakeLLMServer, media_stack: LocalStack
) -> None:
    assert media_stack.vocalizr and media_stack.visualizr
    app = start_app(media_stack.vocalizr.url, media_stack.visualizr.url)
    llm.script("Austerlitz was my finest day.", "Light keeps its speed, and so do I.")
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "scene.py"),
            "--url",
            app.url,
            "--strategy",
            "list",
            "--characters",  # as the README gives it: the messages right after the members
            "napoleon,einstein",
            "Tell me something true.",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    # The scene opens with both greetings, then the message, then each reply under its speaker.
    order = [
        "Napoleon Bonaparte: Ah, a visitor.",
        "Albert Einstein: ",
        "you: Tell me something true.",
        "Napoleon Bonaparte: Austerlitz was my finest day.",
        "Albert Einstein: Light keeps its speed, and so do I.",
    ]
    found = [out.find(line) for line in order]
    assert -1 not in found and found == sorted(found), out
    media = re.findall(r"^  (Napoleon Bonaparte|Albert Einstein): (audio|video) (\S+)$", out, re.M)
    assert [(name, kind) for name, kind, _ in media] == [
        ("Napoleon Bonaparte", "audio"),
        ("Napoleon Bonaparte", "video"),
        ("Albert Einstein", "audio"),
        ("Albert Einstein", "video"),
    ], out
    for _, kind, url in media:  # each URL serves its file: a WAV, an MP4
        response = httpx.get(url, timeout=30)
        assert response.status_code == 200, url
        head = response.content[:12]
        assert head.startswith(b"RIFF") if kind == "audio" else head[4:8] == b"ftyp", url


def test_unknown_member_in_the_scene_script_says_which_exist(start_app: StartApp) -> None:
    app = start_app()
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "scene.py"),
            "--url",
            app.url,
            "--characters",
            "napoleon,napolean",
            "--text-only",
            "Hi",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert "no character 'napolean'; known:" in run.stderr and "napoleon" in run.stderr


def test_sixteen_clients_at_once_all_get_their_own_answer(
    start_app: StartApp, llm: FakeLLMServer
) -> None:
    # Sixteen people, here all at one address (127.0.0.1): the per-client cap is for one person
    # holding every slot, so it is off for this test.
    app = start_app(concurrency_limit=16, turns_per_client=0)
    llm.state.first_token_s = 2.0  # every turn waits on the LLM: they must overlap, not queue
    try:
        clients = [Client(app.url, verbose=False) for _ in range(16)]

        def one(i: int) -> tuple[dict[str, Any], float]:
            started = time.monotonic()
            result = clients[i].predict(
                f"My name is Client{i}. Hello!",
                "napoleon",
                uuid.uuid4().hex,
                False,
                api_name="/chat",
            )
            return result, time.monotonic() - started

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            results = list(pool.map(one, range(16)))
        wall = time.monotonic() - started
    finally:
        llm.state.first_token_s = 0
    texts = [r["text"] for r, _ in results]
    assert all(f"Client{i}" in texts[i] for i in range(16)), texts
    assert len({r["session_id"] for r, _ in results}) == 16
    # Sixteen half-second LLM waits served one at a time would take over 8 s.
    # All sixteen were waiting on the LLM at the same time: each request arrived before the
    # first answer could have come back (served one at a time they would be 2 s apart).
    arrivals = sorted(llm.state.arrivals)
    assert len(arrivals) == 16
    assert arrivals[-1] - arrivals[0] < 2.0, (
        f"LLM requests spread over {arrivals[-1] - arrivals[0]:.1f} s"
    )
    assert wall < 16 * 2.0 / 2, f"16 turns took {wall:.1f} s"
