"""The page's microphone button against a real chattr server, driven over HTTP as the browser
drives it: a spoken message goes through the same turn loop as a typed one (the same gate, the
same memory, the same refusals). A scripted chat model; vocalizr played through MockTransport."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from chattr.run.assembly import create_app
from chattr.settings import Settings
from chattr.testing.threaded_server import ThreadedServer
from chattr.turn.service import ChatService

from ...conftest import CHARACTERS
from ...security.support import Page, download
from ..fake_media import FakeVocalizr, in_process_service, wav

pytestmark = pytest.mark.slow  # starts chattr's app

REPLY = "Imagination is more important than knowledge."
SAID = "What matters more, imagination or knowledge?"


class Running:
    def __init__(self, server: ThreadedServer, service: ChatService, vocalizr: FakeVocalizr):
        self.server, self.service, self.vocalizr = server, service, vocalizr


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Running]:
    """chattr with the media fan-out (vocalizr only), at most 2 turns a minute per client."""
    settings = Settings(
        llm_base_url="http://127.0.0.1:9",
        characters_dir=CHARACTERS,
        data_dir=tmp_path,
        redis_url=None,
        turns_per_minute=2,
    )
    vocalizr = FakeVocalizr(transcript=f"  {SAID} ")
    service = in_process_service(
        tmp_path, GenericFakeChatModel(messages=iter([AIMessage(content=REPLY)] * 10)), vocalizr
    )
    with ThreadedServer(create_app(settings, service)) as server:
        yield Running(server, service, vocalizr)


def speak(page: Page, recording: Path) -> dict[str, Any]:
    """Record and stop the microphone button: the stop_recording event, its outcome."""
    # The chatbot, character, session and media inputs: gr.State inputs are the server's.
    return page.event(
        "chattr-mic", "stop_recording", [page.upload(recording), [], None, None, False]
    )


def shown(outcome: dict[str, Any]) -> list[tuple[str, str]]:
    """The chat messages an event ended with, as (role, text)."""
    chat = outcome["output"]["data"][0]
    chat = chat.get("value", chat) if isinstance(chat, dict) else chat
    lines = []
    for message in chat:
        content = message["content"]
        parts = content if isinstance(content, list) else [content]
        text = " ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in parts)
        lines.append((message["role"], text))
    return lines


def test_a_spoken_message_is_answered_through_the_same_gate_as_a_typed_one(
    app: Running, tmp_path: Path
) -> None:
    recording = tmp_path / "said.wav"
    recording.write_bytes(wav(1.0))
    page = Page(app.server.url)
    assert page.event(None, "load", [])["success"]
    spoken = speak(page, recording)
    assert spoken["success"], spoken
    assert shown(spoken)[-2:] == [("user", SAID), ("assistant", REPLY)]
    transcribed = [r for r in app.vocalizr.requests if r.url.path == "/v1/audio/transcriptions"]
    assert len(transcribed) == 1 and b'name="language"\r\n\r\nen' in transcribed[0].content
    # Turn two of two this minute, typed; the third, spoken, is refused in the gate's words.
    typed = page.event("chattr-message", "submit", ["And now?", [], None, None, False, 0])
    assert typed["success"], typed
    # Memory keeps both turns alike, and "Download my conversation" finds them.
    assert [t["user"] for t in download(page)["turns"] if t["user"]] == [SAID, "And now?"]
    refused = speak(page, recording)
    assert not refused["success"]
    assert "Too many messages: at most 2 a minute" in refused["output"]["error"]
    page.close()


def test_a_silent_recording_is_refused_before_any_turn(app: Running, tmp_path: Path) -> None:
    app.vocalizr.transcript = "   "
    recording = tmp_path / "silence.wav"
    recording.write_bytes(wav(1.0))
    page = Page(app.server.url)
    assert page.event(None, "load", [])["success"]
    outcome = speak(page, recording)
    assert not outcome["success"]
    assert "Nothing was heard in the recording" in outcome["output"]["error"]
    assert not [r for r in app.vocalizr.requests if r.url.path == "/v1/speech"]  # no reply made
    page.close()
