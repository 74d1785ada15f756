"""The fake LLM's fixed reply (`--reply`): every request gets it, after anything scripted."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from chattr.testing.fake_llm import FakeLLMState
from tests.serving import free_port

REPLY = "Ah, you ask about Austerlitz. It was the finest day of my life."


def test_a_set_reply_answers_every_request_once_the_script_is_spent() -> None:
    state = FakeLLMState(reply=REPLY)
    state.script.append("Scripted once.")
    asked = {"messages": [{"role": "user", "content": "What is my name?"}]}
    assert [state.next_reply(asked) for _ in range(3)] == ["Scripted once.", REPLY, REPLY]


def test_the_command_line_serves_the_set_reply() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "chattr.testing.fake_llm", "--port", str(port), "--reply", REPLY],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body = {"model": "fake", "messages": [{"role": "user", "content": "Tell me a story."}]}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.post(url, json=body, timeout=5)
                break
            except httpx.TransportError:
                assert process.poll() is None, "the fake LLM exited"
                assert time.monotonic() < deadline, "the fake LLM did not answer within 60 s"
                time.sleep(0.1)
        assert answer.json()["choices"][0]["message"]["content"] == REPLY
    finally:
        process.terminate()
        process.wait(10)
