"""chattr's chat client against real HTTP servers: the fake LLM, and small apps that misbehave."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse

from chattr.llm import ChatCompletions, LLMRefused, LLMUnreachable
from chattr.media.local_stack import free_port
from chattr.testing.fake_llm import FakeLLMServer
from chattr.testing.threaded_server import ThreadedServer


def client(url: str, **options: object) -> ChatCompletions:
    return ChatCompletions(provider="groq", model="test-model", base_url=url, **options)  # type: ignore[arg-type]


async def reply(model: ChatCompletions, prompt: str = "Hello.") -> str:
    return "".join([chunk.content async for chunk in model.astream(prompt)])


def event(content: str) -> str:
    return f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': content}}]})}\n\n"


async def test_the_key_goes_as_a_bearer_token_and_no_key_sends_none(llm: FakeLLMServer) -> None:
    llm.script("With a key.", "Without one.")
    assert await reply(client(llm.url, api_key="gsk_test")) == "With a key."
    assert await reply(client(llm.url)) == "Without one."
    assert llm.keys == ["Bearer gsk_test", None]


async def test_a_refused_key_fails_at_once_with_the_servers_words(llm: FakeLLMServer) -> None:
    llm.script(401)
    with pytest.raises(LLMRefused) as caught:
        await reply(client(llm.url, api_key="gsk_wrong"))
    assert caught.value.status == 401
    message = str(caught.value)
    assert "answered 401: scripted failure" in message and "GROQ_API_KEY" in message
    assert "gsk_wrong" not in message
    assert len(llm.requests) == 1  # a bad key is not tried again


async def test_a_busy_server_is_tried_once_more(llm: FakeLLMServer) -> None:
    llm.script(503, "Second time lucky.")
    assert await reply(client(llm.url)) == "Second time lucky."
    assert len(llm.requests) == 2


async def test_a_server_busy_twice_fails_the_call(llm: FakeLLMServer) -> None:
    llm.script(503, 503, "Never heard.")
    with pytest.raises(LLMRefused, match="answered 503"):
        await reply(client(llm.url))
    assert len(llm.requests) == 2


async def test_no_retries_when_told_none(llm: FakeLLMServer) -> None:
    llm.script(503, "Never heard.")
    with pytest.raises(LLMRefused):
        await reply(client(llm.url, max_retries=0))
    assert len(llm.requests) == 1


async def test_nobody_listening_says_where_it_looked() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(LLMUnreachable, match=f"could not reach {url}/openai/v1/chat/completions"):
        await reply(client(url, max_retries=0))


@dataclass
class Misbehaving:
    url: str
    calls: list[str]  # the routes asked, in order


@pytest.fixture(scope="module")
def misbehaving() -> Iterator[Misbehaving]:
    """A server whose answers go wrong in the ways hosted APIs' do."""
    app = FastAPI()
    calls: list[str] = []

    @app.post("/error-event/openai/v1/chat/completions")
    async def error_event() -> StreamingResponse:
        calls.append("error-event")

        async def events() -> AsyncIterator[str]:
            yield event("Hello")
            yield f"data: {json.dumps({'error': {'message': 'the model is overloaded'}})}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/cut/openai/v1/chat/completions")
    async def cut() -> StreamingResponse:
        calls.append("cut")

        async def events() -> AsyncIterator[str]:
            yield event("Hello, ")
            raise RuntimeError("the connection drops here")

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/not-json/openai/v1/chat/completions")
    async def not_json() -> StreamingResponse:
        calls.append("not-json")

        async def events() -> AsyncIterator[str]:
            yield ": a comment line, which is skipped\n\n"
            yield "data: {not json\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/slow-down/openai/v1/chat/completions")
    async def slow_down() -> JSONResponse:
        calls.append("slow-down")
        return JSONResponse(
            {"error": {"message": "rate limit reached"}}, 429, headers={"Retry-After": "60"}
        )

    with ThreadedServer(app, lifespan="off") as server:
        yield Misbehaving(server.url, calls)


async def test_an_error_inside_the_stream_fails_the_call(misbehaving: Misbehaving) -> None:
    model = client(misbehaving.url + "/error-event")
    pieces: list[str] = []
    with pytest.raises(LLMRefused, match="stopped the answer: the model is overloaded"):
        async for chunk in model.astream("Hello."):
            pieces.append(chunk.content)
    assert pieces == ["Hello"]


async def test_a_cut_answer_is_not_tried_again(misbehaving: Misbehaving) -> None:
    calls = misbehaving.calls
    before = calls.count("cut")
    model = client(misbehaving.url + "/cut")
    pieces: list[str] = []
    with pytest.raises(LLMUnreachable, match=r"the answer from 127\.0\.0\.1:[0-9]+ stopped"):
        async for chunk in model.astream("Hello."):
            pieces.append(chunk.content)
    assert pieces == ["Hello, "]  # the text had begun: a second try would say it twice
    assert calls.count("cut") == before + 1


async def test_an_event_that_is_not_json_is_named(misbehaving: Misbehaving) -> None:
    with pytest.raises(LLMRefused, match=re.escape("not JSON: '{not json'")):
        await reply(client(misbehaving.url + "/not-json"))


async def test_a_long_wait_asked_for_fails_at_once(misbehaving: Misbehaving) -> None:
    calls = misbehaving.calls
    before = calls.count("slow-down")
    with pytest.raises(LLMRefused, match="rate limit reached; the server asks to wait 60 s"):
        await reply(client(misbehaving.url + "/slow-down"))
    assert calls.count("slow-down") == before + 1


def test_a_message_of_another_kind_is_refused_before_any_call() -> None:
    from langchain_core.messages import ToolMessage

    model = client("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="a 'tool' message cannot be sent"):
        model.body([ToolMessage("42", tool_call_id="x")])
