"""Both LLM providers stream from an OpenAI/Groq-compatible server through their real clients."""

from __future__ import annotations

from typing import Literal

import pytest

from chattr.llm import LLMNotConfigured, make_chat_model
from chattr.settings import Settings
from chattr.testing.fake_llm import FakeLLMServer


@pytest.mark.parametrize(("provider", "path"), [("groq", ""), ("openai", "/v1")])
async def test_the_reply_streams_in_pieces(
    llm: FakeLLMServer, provider: Literal["groq", "openai"], path: str
) -> None:
    model = make_chat_model(
        Settings(llm_provider=provider, llm_base_url=llm.url + path, llm_model="test-model")
    )
    llm.script("One two three four five.")
    pieces = [chunk.content async for chunk in model.astream("Count, please.")]
    assert "".join(str(p) for p in pieces) == "One two three four five."
    assert len([p for p in pieces if p]) >= 5
    request = llm.requests[-1]
    assert request["model"] == "test-model" and request["stream"] is True
    assert request["messages"][-1]["content"] == "Count, please."


def test_no_key_and_no_base_url_says_what_to_set() -> None:
    with pytest.raises(LLMNotConfigured, match="GROQ_API_KEY"):
        make_chat_model(Settings(groq_api_key=None, llm_base_url=None))
