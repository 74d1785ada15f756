"""The public API in-process: ChatApi's endpoints over a real turn loop and ChatService, a
scripted chat model and media services played through httpx.MockTransport; the page's named
endpoints unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from chattr.access.gate import Gate
from chattr.media.store import MediaStore
from chattr.settings import Settings
from chattr.turn.loop import TurnLoop
from chattr.turn.personal_data import PersonalData
from chattr.web.api import ChatApi
from chattr.web.layout import build_blocks

from ...conftest import CHARACTERS
from ..fake_media import FakeVocalizr, in_process_service

REPLY = "Ah, a visitor. Few ships reach this rock."


def settings(tmp_path: Path) -> Settings:
    return Settings(
        llm_base_url="http://127.0.0.1:9",
        characters_dir=CHARACTERS,
        data_dir=tmp_path,
        redis_url=None,
    )


def chat_api(tmp_path: Path, vocalizr: FakeVocalizr | None = None) -> ChatApi:
    config = settings(tmp_path)
    service = in_process_service(
        tmp_path, GenericFakeChatModel(messages=iter([AIMessage(content=REPLY)] * 10)), vocalizr
    )
    loop = TurnLoop(
        service,
        gate=Gate.from_settings(config),
        personal=PersonalData(service, tmp_path),
        shown_as=gr.Error,
    )
    return ChatApi(loop, config)


async def results(api: ChatApi, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    return [result async for result in api.chat(*args, **kwargs)]


async def test_chat_streams_results_and_the_last_is_the_whole_turn(tmp_path: Path) -> None:
    api = chat_api(tmp_path, FakeVocalizr())
    streamed = await results(api, "Hello.", "napoleon", "")
    last = streamed[-1]
    assert set(last) == {
        "text",
        "session_id",
        "character",
        "audio_url",
        "video_url",
        "segments",
        "errors",
    }
    assert last["text"] == REPLY and last["character"] == "napoleon"
    assert len(last["session_id"]) == 32  # a new conversation was given an id
    assert " ".join(s["text"] for s in last["segments"]) == REPLY
    assert all(s["audio_url"] for s in last["segments"])
    assert last["audio_url"].startswith("http://chattr.test/media/") and last["errors"] == []
    assert len(streamed) > 2  # partial results came first


async def test_forget_deletes_the_joined_media_a_chat_made(tmp_path: Path) -> None:
    api = chat_api(tmp_path, FakeVocalizr())
    last = (await results(api, "Hello.", "napoleon", "mine"))[-1]
    store = MediaStore.under(tmp_path)
    name = store.name_in_url(last["audio_url"])
    assert name is not None and store.path(name) is not None
    assert api.export("mine")["media"] == [last["audio_url"]]
    report = api.forget("mine")
    assert report["deleted"]["media_files"] == 1 and report["deleted"]["turns"] == 1
    assert store.path(name) is None


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("Hello.", "napoleon", "", "yes"), "'media' must be true or false, not str."),
        (("", "napoleon", "s"), "The message is empty"),
        (("Hello.", "nobody", "s"), "nobody"),
        (("Hello.", "napoleon", "s", True, None, 99), "There is no greeting 99"),
    ],
)
async def test_chat_refuses_what_it_cannot_answer_with_a_page_error(
    tmp_path: Path, args: tuple[Any, ...], words: str
) -> None:
    with pytest.raises(gr.Error, match=words):
        await results(chat_api(tmp_path), *args)


def test_characters_lists_ids_names_and_greetings(tmp_path: Path) -> None:
    listed = chat_api(tmp_path).characters()
    assert [c["id"] for c in listed] == sorted(c["id"] for c in listed)
    napoleon = next(c for c in listed if c["id"] == "napoleon")
    assert napoleon["name"] == "Napoleon Bonaparte"
    assert napoleon["greeting"] == napoleon["greetings"][0] and len(napoleon["greetings"]) > 1


def test_the_page_exposes_the_named_endpoints_with_their_parameters(tmp_path: Path) -> None:
    api = chat_api(tmp_path)
    blocks = build_blocks(api.loop.service, api.settings)
    endpoints = blocks.get_api_info()["named_endpoints"]
    assert sorted(endpoints) == ["/characters", "/chat", "/export", "/forget", "/scene", "/undo"]
    assert [p["parameter_name"] for p in endpoints["/chat"]["parameters"]] == [
        "message",
        "character",
        "session_id",
        "media",
        "audio",
        "greeting",
    ]
    assert [p["parameter_name"] for p in endpoints["/export"]["parameters"]] == ["session_id"]
    assert [p["parameter_name"] for p in endpoints["/forget"]["parameters"]] == ["session_id"]
    assert [p["parameter_name"] for p in endpoints["/undo"]["parameters"]] == [
        "session_id",
        "character",
    ]
    assert endpoints["/characters"]["parameters"] == []
