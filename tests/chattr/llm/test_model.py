"""Both clients, for both providers, stream from an OpenAI/Groq-compatible server."""

from __future__ import annotations

import subprocess
import sys
from typing import Literal

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from chattr.llm import ChatCompletions, LLMNotConfigured, make_chat_model
from chattr.settings import Settings
from chattr.testing.fake_llm import FakeLLMServer

PROMPT = [SystemMessage("Count."), HumanMessage("Start."), AIMessage("One."), HumanMessage("On.")]


@pytest.mark.parametrize("client", ["http", "langchain"])
@pytest.mark.parametrize(("provider", "path"), [("groq", ""), ("openai", "/v1")])
async def test_the_reply_streams_in_pieces(
    llm: FakeLLMServer,
    provider: Literal["groq", "openai"],
    path: str,
    client: Literal["http", "langchain"],
) -> None:
    model = make_chat_model(
        Settings(
            llm_client=client,
            llm_provider=provider,
            llm_base_url=llm.url + path,
            llm_model="test-model",
            llm_max_tokens=123,
            llm_temperature=0.25,
        )
    )
    assert isinstance(model, ChatCompletions) == (client == "http")
    llm.script("One two three four five.")
    pieces = [chunk.content async for chunk in model.astream(PROMPT)]
    assert "".join(str(p) for p in pieces) == "One two three four five."
    assert len([p for p in pieces if p]) >= 5
    request = llm.requests[-1]
    assert request["model"] == "test-model" and request["stream"] is True
    assert request["temperature"] == 0.25
    # What each provider's API calls the bound, as LangChain's clients send it.
    assert request["max_tokens" if provider == "groq" else "max_completion_tokens"] == 123
    assert [(m["role"], m["content"]) for m in request["messages"]] == [
        ("system", "Count."),
        ("user", "Start."),
        ("assistant", "One."),
        ("user", "On."),
    ]


def test_the_default_client_needs_neither_langchain_clients_nor_vendor_sdks() -> None:
    """The cold start's gain: building and using the default model imports none of them."""
    script = """
import asyncio, sys
from chattr.llm import ChatCompletions, make_chat_model
from chattr.settings import Settings

model = make_chat_model(Settings(llm_base_url="http://127.0.0.1:9/v1", llm_provider="openai"))
assert isinstance(model, ChatCompletions), model
assert model.url == "http://127.0.0.1:9/v1/chat/completions", model.url

async def ask():
    try:
        async for _ in model.astream("hello"):
            pass
    except ConnectionError:
        pass  # nothing listens on port 9: the call was made, which is all this needs

asyncio.run(ask())
clients = ("langchain_openai", "langchain_groq", "openai", "groq")
print(sorted(m for m in clients if m in sys.modules))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]", done.stderr


def test_no_key_and_no_base_url_says_what_to_set() -> None:
    with pytest.raises(LLMNotConfigured, match="GROQ_API_KEY"):
        make_chat_model(Settings(groq_api_key=None, llm_base_url=None))
