"""The page keeps its conversation in the browser: every replica sharing a Redis encrypts it with
the same secret, and a page loaded on any of them resumes the conversation kept in memory."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import gradio as gr
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from pydantic import SecretStr

from chattr.access.gate import Gate
from chattr.characters.character_set import load_characters
from chattr.memory import Turn, open_memory
from chattr.reply import TurnState
from chattr.settings import Settings
from chattr.turn.loop import TurnLoop
from chattr.turn.personal_data import PersonalData, open_media_index
from chattr.turn.service import ChatService
from chattr.web.api import ChatApi
from chattr.web.browser_state import (
    CHARACTER_KEY,
    SCENE_STORAGE_KEY,
    SESSION_KEY,
    browser_secret,
)
from chattr.web.handlers import ChatPage
from chattr.web.layout import build_blocks

from ...conftest import CHARACTERS


def replica(tmp_path: Path, redis_url: str | None, prefix: str, **extra: Any) -> Settings:
    """The settings of one replica: its own data folder, the Redis it shares."""
    return Settings(
        llm_base_url="http://127.0.0.1:9",
        characters_dir=CHARACTERS,
        data_dir=tmp_path / uuid.uuid4().hex,
        redis_url=redis_url,
        redis_prefix=prefix,
        **extra,
    )


def service(settings: Settings) -> ChatService:
    return ChatService(
        characters=load_characters(CHARACTERS),
        memory=open_memory(
            settings.redis_url, max_turns=10, ttl_s=3600, prefix=settings.redis_prefix
        ),
        retriever=None,
        llm=GenericFakeChatModel(messages=iter([AIMessage(content="Yes.")])),
    )


def page(settings: Settings) -> ChatPage:
    chat = service(settings)
    gate = Gate.from_settings(settings)
    index = open_media_index(
        settings.data_dir, settings.redis_url, prefix=settings.redis_prefix, retention_s=3600
    )
    loop = TurnLoop(chat, gate=gate, personal=PersonalData(chat, settings.data_dir, index))
    return ChatPage(ChatApi(loop, settings))


def browser_states(demo: gr.Blocks) -> dict[str, str]:
    """storage key → secret of the page's BrowserState components, as the page's config says."""
    config = demo.get_config_file()
    return {
        c["props"]["storage_key"]: c["props"]["secret"]
        for c in config["components"]
        if c["type"] == "browserstate"
    }


def test_replicas_sharing_redis_share_the_browser_secret(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    a, b = (replica(tmp_path, redis_url, redis_prefix) for _ in range(2))
    assert browser_secret(a) == browser_secret(b)
    pages = [browser_states(build_blocks(service(s), s)) for s in (a, b)]
    assert set(pages[0]) == {SESSION_KEY, CHARACTER_KEY, SCENE_STORAGE_KEY}
    assert pages[0] == pages[1] == dict.fromkeys(pages[0], browser_secret(a))
    # Another deployment (another prefix) does not read this one's values.
    other = replica(tmp_path, redis_url, f"{redis_prefix}-other")
    assert browser_secret(other) != browser_secret(a)


def test_the_setting_wins_and_without_redis_each_process_has_its_own(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    given = replica(tmp_path, redis_url, redis_prefix, browser_secret=SecretStr("s3cret"))
    assert browser_secret(given) == "s3cret"
    alone = replica(tmp_path, None, redis_prefix)
    assert browser_secret(alone) != browser_secret(alone)
    # Redis unreachable: the page still works, on this replica's own secret.
    gone = replica(tmp_path, "redis://127.0.0.1:1/0", redis_prefix)
    assert browser_secret(gone) != browser_secret(gone)


def test_a_page_loaded_on_another_replica_resumes_the_conversation(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    a, b = (page(replica(tmp_path, redis_url, redis_prefix)) for _ in range(2))
    session = uuid.uuid4().hex
    for said, answered in (("Hello, Albert.", "Guten Tag!"), ("And light?", "A wave.")):
        a.service.memory.append(session, "einstein", Turn(said, answered))
    # The second turn's media, as A's turn loop notes them when the turn ends.
    made = TurnState(session, "einstein", "And light?", text="A wave.", media=True, done=True)
    made.video_url = "http://chattr.test/media/" + "a" * 32 + ".mp4"
    a.loop.personal.record_turn(made)

    kept, cid, picker, chat, card, _ = b.resume(session, "einstein")
    assert (kept, cid, picker["value"]) == (session, "einstein", "einstein")
    shown = [m["content"] for m in chat][1:]
    assert shown[:4] == ["Hello, Albert.", "Guten Tag!", "And light?", "A wave."]
    assert len(shown) == 5 and f'<video src="{made.video_url}"' in shown[4]
    assert "The whole reply" in shown[4]
    assert "Einstein" in card


def test_a_load_without_a_kept_conversation_starts_one(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    b = page(replica(tmp_path, redis_url, redis_prefix))
    first = b.ids()[0]
    for stored, stored_cid in (("", None), ({"x": 1}, ["einstein"]), ("../../etc", "nobody")):
        session, cid, _, chat, _, _ = b.resume(stored, stored_cid)
        assert len(session) == 32 and session != stored
        assert cid == first and [m["role"] for m in chat] == ["assistant"]  # the greeting
