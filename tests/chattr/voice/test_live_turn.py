"""A live turn in-process, as the page's turn handler runs it: the ChatService with a scripted chat
model, the real gate, vocalizr and visualizr played through httpx.MockTransport; requests are
Starlette's own. What the page is shown while it is being asked to stop the reply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import soundfile as sf
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from starlette.requests import Request

from chattr.access.gate import Gate
from chattr.access.rate_limits import FairShare
from chattr.turn.loop import TurnLoop
from chattr.turn.personal_data import PersonalData
from chattr.voice.controls import INTERRUPTED, VoiceControls
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
    # vocalizr said when each word of "I crossed the Alps in 1800." ends in its 0.6 s clip
    # (by characters here: 0.04, 0.21, 0.3, 0.41, ...): by 0.405 s, three words, where
    # two thirds of the clip would be four.
    assert [w.end_s for w in reply.words[0][:4]] == [0.043, 0.214, 0.3, 0.407]
    first = next(iter(reply.clip_urls[0]))
    stopped = live.barge_in([PlayedClip(first, 0.405, 0.6, ended=False)], playing=True)
    assert stopped is reply and reply.heard == "I crossed the"


async def test_a_turn_said_over_a_reply_shows_that_reply_marked_as_interrupted(
    tmp_path: Path, assets: Path
) -> None:
    """The page sends the chat when it is told an utterance is ready; the reply that utterance
    stopped may be marked in the page's chat only after that, by the barge-in's answer. The turn
    shows it marked all the same."""
    said = "But for many this year has been hard."
    voice = voice_controls(tmp_path, FakeVocalizr(transcript=said), "A hard year, yes.")
    live = LiveConversation()
    first = live.begin_reply("The Alps?")
    first.update(["I crossed the Alps in 1800."], [{"http://h/v1.mp4"}])
    live.finish(first, remembered=True)  # its turn is over; its clip still plays
    recording, rate = sf.read(assets / "speech_en_16k.wav", dtype="float32", always_2d=True)
    words = recording.mean(axis=1)[int(5.9 * rate) :]  # "But for many this year has been ..."
    audio = np.concatenate([words, np.zeros(3 * rate, np.float32)]).astype(np.float32)
    for offset in range(0, audio.size, rate // 10):  # the person speaks over the clip
        started, _ = live.hear(rate, audio[offset : offset + rate // 10])
        if started:
            assert live.speech_over_reply(playing=True)
    utterance = live.start_turn()
    assert utterance is not None and live.over_reply(utterance)
    # The page was told, and sent its chat; then a check of the words stopped the reply.
    sent = [
        {"role": "user", "content": "The Alps?"},
        {"role": "assistant", "content": "I crossed the Alps in 1800."},
    ]
    live.asking_to_stop()
    assert live.barge_in([PlayedClip("http://h/v1.mp4", 0.5, 2.0, ended=False)], playing=True)
    shown = [
        chat
        async for chat, _, _ in voice.spoken_turn(
            live, utterance, sent, "napoleon", SESSION, False, request()
        )
    ]
    assert shown[-1][1]["content"] == "I crossed the Alps in 1800." + INTERRUPTED
    assert shown[-1][2] == {"role": "user", "content": said}
