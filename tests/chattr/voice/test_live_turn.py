"""A live turn in-process, as the page's turn handler runs it: the ChatService with a scripted chat
model, the real gate, vocalizr and visualizr played through httpx.MockTransport; requests are
Starlette's own. What the page is shown while it is being asked to stop the reply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from starlette.requests import Request

from chattr.access.gate import Gate
from chattr.access.rate_limits import FairShare
from chattr.turn.loop import TurnLoop
from chattr.turn.personal_data import PersonalData
from chattr.voice.controls import VoiceControls
from chattr.voice.live import LiveConversation, PlayedClip
from chattr.web.handlers import media_messages, sync_media

from ..fake_media import FakeVisualizr, FakeVocalizr, in_process_service

REPLY = (
    "I crossed the Alps in 1800. The snow was deep. The mules slipped on the ice. "
    "We came down into Italy at last. We won at Marengo."
)
SESSION = "session-1"


def request() -> gr.Request:
    """A page's request, as Gradio hands one to a handler."""
    scope = {
        "type": "http",
        "scheme": "http",
        "server": ("chattr.test", 80),
        "path": "/",
        "root_path": "",
        "headers": [(b"host", b"chattr.test")],
        "client": ("198.51.100.7", 40000),
    }
    return gr.Request(Request(scope), session_hash="page-1")


def voice_controls(tmp_path: Path, vocalizr: FakeVocalizr, *replies: str) -> VoiceControls:
    llm = GenericFakeChatModel(messages=iter([AIMessage(content=r) for r in replies]))
    service = in_process_service(tmp_path, llm, vocalizr, FakeVisualizr())
    gate = Gate(turns=None, imports=None, fair_share=FairShare(4, 0, 8))
    loop = TurnLoop(service, gate=gate, personal=PersonalData(service, tmp_path))
    return VoiceControls(loop, media_messages=media_messages, sync_media=sync_media)


def clips(history: list[dict[str, Any]]) -> list[str]:
    """The media players in the chat, as the page shows them."""
    return [str(m["content"]) for m in history if str(m["content"]).startswith("<figure")]


async def test_once_the_page_is_asked_to_stop_a_reply_its_turn_shows_no_more_clips(
    tmp_path: Path,
) -> None:
    voice = voice_controls(tmp_path, FakeVocalizr(), REPLY)
    live = LiveConversation()
    shown: list[str] = []  # the clips when the page was asked to stop
    async for history in voice.answer("The Alps?", [], "napoleon", SESSION, True, live, request()):
        if not shown and clips(history):
            # Words were heard over the first clip: the page is asked to stop (its answer
            # comes after the turn here, as from a slow page).
            shown = clips(history)
            live.asking_to_stop()
        elif shown:
            assert clips(history) == shown  # a clip added now would play after the stop
    reply = live.reply
    assert reply is not None and reply.finished and not reply.interrupted
    assert len(shown) < len(reply.sentences)  # there was more of it to show
    # The page's answer, late: the first clip was playing; the reply is interrupted there.
    first = next(iter(reply.clip_urls[0]))
    stopped = live.barge_in([PlayedClip(first, 1.0, 2.0, ended=False)], playing=True)
    assert stopped is reply and reply.heard == "I crossed the"
