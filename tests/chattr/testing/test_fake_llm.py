"""The fake LLM: its fixed reply (`--reply`), which every request gets after anything scripted, and
its pace."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import httpx

from chattr.testing.fake_llm import FakeLLMState, create_app
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


async def test_tokens_keep_their_pace_from_the_start_when_the_server_was_held_up() -> None:
    """A hosted LLM streams at its pace whatever its client does. The fake one is a thread in
    its client's process: a second in which that process held it up delays the tokens due then,
    not every token after them as well."""
    state = FakeLLMState(tokens_per_s=200.0)
    state.script.append([f"w{index} " for index in range(100)])  # due over 0.5 s
    transport = httpx.ASGITransport(app=create_app(state))
    body = {"model": "fake", "stream": True, "messages": [{"role": "user", "content": "Go."}]}
    async with httpx.AsyncClient(transport=transport, base_url="http://llm.test") as client:
        started = time.monotonic()
        asyncio.get_running_loop().call_later(0.05, time.sleep, 1.0)  # the whole process busy
        answer = await client.post("/v1/chat/completions", json=body)
        elapsed = time.monotonic() - started
    assert answer.text.count('"content": "w') == 100
    # Held up until 1.05 s, then the tokens already due at once: done at about 1.05 s, where a
    # pause after each token ended at 1.5 s (the 0.45 s of tokens still to come after it).
    assert 1.0 <= elapsed < 1.3
