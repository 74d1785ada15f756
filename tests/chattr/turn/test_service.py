"""Whole turns in-process: the real ChatService and fan-out, a scripted chat model, the media
services played through httpx.MockTransport; what a turn yields, failures included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from chattr.characters.character_set import load_characters
from chattr.media.fanout import FanoutOptions, MediaFanout
from chattr.media.store import MediaStore
from chattr.memory import open_memory
from chattr.reply import TurnState
from chattr.turn.service import ChatService, TurnFailed

from ...conftest import CHARACTERS
from ..fake_media import FakeVisualizr, FakeVocalizr, html_page

REPLY = "I crossed the Alps in 1800. The snow was deep. We won at Marengo."


def model(text: str = REPLY) -> GenericFakeChatModel:
    """A chat model that streams `text` word by word, once per turn."""
    return GenericFakeChatModel(messages=iter([AIMessage(content=text)] * 10))


class BreaksMidway(GenericFakeChatModel):
    """Streams the first words, then fails, as a model server that goes away does."""

    def _stream(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        chunks = list(super()._stream(messages, *args, **kwargs))
        yield from chunks[:8]
        raise ConnectionError("the model server went away")


def service(
    tmp_path: Path,
    llm: GenericFakeChatModel,
    vocalizr: FakeVocalizr | None = None,
    visualizr: FakeVisualizr | None = None,
) -> ChatService:
    media = None
    if vocalizr is not None or visualizr is not None:
        media = MediaFanout(
            vocalizr.client() if vocalizr else None,
            visualizr.client() if visualizr else None,
            store=MediaStore(tmp_path / "media"),
            public_url="http://chattr.test",
            options=FanoutOptions(join=visualizr is None),
        )
    return ChatService(
        characters=load_characters(CHARACTERS),
        memory=open_memory(None, max_turns=10, ttl_s=3600),
        retriever=None,
        llm=llm,
        media=media,
    )


async def turn(
    chat: ChatService, message: str = "Tell me of Marengo.", **kwargs: Any
) -> list[TurnState]:
    """Every state the turn yields, copied as it was then."""
    states = []
    async for state in chat.run(message, "napoleon", "session-1", **kwargs):
        states.append(
            TurnState(
                **{**vars(state), "segments": list(state.segments), "errors": list(state.errors)}
            )
        )
    return states


async def test_a_turn_streams_its_text_then_each_sentences_speech_then_the_whole(
    tmp_path: Path,
) -> None:
    chat = service(tmp_path, model(), FakeVocalizr())
    states = await turn(chat, base_url="http://page.test")
    last = states[-1]
    assert last.done and not any(s.done for s in states[:-1])
    assert last.text == REPLY and last.media
    assert [s.text for s in last.segments] == [
        "I crossed the Alps in 1800.",
        "The snow was deep.",
        "We won at Marengo.",
    ]
    assert all(s.audio_url for s in last.segments)
    assert last.audio_url and last.audio_url.startswith("http://page.test/media/")
    assert last.errors == []
    # The text grew before the media came: an early state has text and no speech yet.
    assert any(s.text and not any(seg.audio_url for seg in s.segments) for s in states)
    assert {"prepare_s", "first_text_s", "first_audio_s", "joined_s", "total_s"} <= set(
        last.timings
    )
    result = last.to_api()
    assert result["audio_url"] == last.audio_url and result["errors"] == []
    assert [seg["text"] for seg in result["segments"]] == [s.text for s in last.segments]
    # The turn is remembered for the next one.
    assert chat.memory.recent("session-1", "napoleon")[-1].assistant == REPLY


async def test_a_media_service_that_answers_nonsense_is_in_the_turns_errors(
    tmp_path: Path,
) -> None:
    chat = service(tmp_path, model(), FakeVocalizr(), FakeVisualizr(videos=html_page))
    last = (await turn(chat))[-1]
    assert last.text == REPLY and last.done
    assert [e.service for e in last.errors] == ["visualizr"]
    assert "not JSON (text/html" in last.errors[0].detail
    assert all(s.audio_url and not s.video_url for s in last.segments)
    assert last.to_api()["errors"] == [{"service": "visualizr", "detail": last.errors[0].detail}]


async def test_media_off_for_a_turn_is_text_only(tmp_path: Path) -> None:
    vocalizr = FakeVocalizr()
    last = (await turn(service(tmp_path, model(), vocalizr), media=False))[-1]
    assert last.text == REPLY and not last.media
    assert last.segments == [] and last.errors == [] and vocalizr.requests == []


async def test_a_model_failing_mid_reply_fails_the_turn_and_stops_its_media(
    tmp_path: Path,
) -> None:
    vocalizr = FakeVocalizr()
    chat = service(tmp_path, BreaksMidway(messages=iter([AIMessage(content=REPLY)])), vocalizr)
    with pytest.raises(TurnFailed, match="ConnectionError: the model server went away"):
        await turn(chat)
    assert chat.memory.recent("session-1", "napoleon") == []  # nothing half-said is remembered
    assert not list((tmp_path / "media").iterdir())  # no joined file
