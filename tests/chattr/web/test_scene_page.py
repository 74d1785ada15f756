"""Scenes on the page, against a real chattr server driven over HTTP as the browser drives it:
start a scene, talk to it, change its members, let one speak, reload, leave it, speak into it.
A chat model that answers as whoever the prompt cues; vocalizr played through MockTransport."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chattr.characters.character_set import load_characters
from chattr.media.fanout import FanoutOptions, MediaFanout
from chattr.media.store import MediaStore
from chattr.memory import SCENE_KEY, open_memory
from chattr.run.assembly import create_app
from chattr.settings import Settings
from chattr.testing.threaded_server import ThreadedServer
from chattr.turn.service import ChatService
from chattr.web.browser_state import SCENE_STORAGE_KEY

from ...security.support import Page, download
from ..fake_media import FakeVocalizr, wav
from ..scene.cued_model import CuedModel

pytestmark = pytest.mark.slow  # starts chattr's app

BOTH = ["napoleon", "einstein"]
NAMING_BOTH = "Napoleon and Einstein, what will the future bring?"


class Running:
    def __init__(self, server: ThreadedServer, service: ChatService, vocalizr: FakeVocalizr):
        self.server, self.service, self.vocalizr = server, service, vocalizr
        self.url = server.url


Start = Callable[..., Running]


@pytest.fixture
def start(tmp_path: Path, characters_dir: Path) -> Iterator[Start]:
    """chattr with Napoleon, Einstein and Marie Curie (no portrait), speech from a fake vocalizr
    (`failing_voice`: that member's speech fails)."""
    servers: list[ThreadedServer] = []

    def run(failing_voice: str | None = None, **settings: Any) -> Running:
        vocalizr = FakeVocalizr(transcript=f" {NAMING_BOTH} ")

        def answer(request: httpx.Request) -> httpx.Response:
            speech = request.url.path == "/v1/speech"
            if speech and failing_voice is not None and failing_voice in request.content.decode():
                return httpx.Response(500, json={"error": "engine", "detail": "it broke"})
            return vocalizr(request)

        service = ChatService(
            characters=load_characters(characters_dir),
            memory=open_memory(None, max_turns=20, ttl_s=3600),
            retriever=None,
            llm=CuedModel(),
            media=MediaFanout(
                vocalizr.client(through=answer),
                None,
                store=MediaStore.under(tmp_path),
                public_url="http://chattr.test",
                options=FanoutOptions(),
            ),
        )
        values: dict[str, Any] = {
            "llm_base_url": "http://127.0.0.1:9",
            "characters_dir": characters_dir,
            "data_dir": tmp_path,
            "redis_url": None,
            **settings,
        }
        server = ThreadedServer(create_app(Settings(**values), service)).start()
        servers.append(server)
        return Running(server, service, vocalizr)

    yield run
    for server in servers:
        server.stop()


def scene_state(page: Page) -> dict[str, Any]:
    """The scene as the browser keeps it."""
    (component,) = [
        c["id"]
        for c in page.config["components"]
        if c["type"] == "browserstate" and c["props"].get("storage_key") == SCENE_STORAGE_KEY
    ]
    kept = page.stored[component]
    return kept if isinstance(kept, dict) else {}


def output(outcome: dict[str, Any], index: int) -> Any:
    assert outcome["success"], outcome
    value = outcome["output"]["data"][index]
    if isinstance(value, dict) and value.get("__type__") == "update":
        return value.get("value")
    return value


def texts(chat: list[dict[str, Any]]) -> list[str]:
    out = []
    for message in chat:
        content = message["content"]
        parts = content if isinstance(content, list) else [content]
        out.append(" ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in parts))
    return out


def reading(chat: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The chat as a person reads it: ("user", words), (member, "line"), (member, "clip"),
    (member, "whole"), ("note", words)."""
    read = []
    for message, text in zip(chat, texts(chat), strict=True):
        by = re.search(r'class="chattr-(?:speaker|clip) chattr-by-([a-z0-9_-]+)"', text)
        if message["role"] == "user":
            read.append(("user", text))
        elif by is None:
            read.append(("note", text))
        elif "chattr-speaker" in text:
            read.append((by.group(1), "line"))
        elif "The whole reply" in text:
            read.append((by.group(1), "whole"))
        else:
            read.append((by.group(1), "clip"))
    return read


def start_scene(page: Page, members: list[str]) -> dict[str, Any]:
    return page.event("chattr-scene-start", "click", [members, None, "natural"])


def send(page: Page, message: str, history: list[Any], strategy: str = "natural") -> Any:
    return page.event(
        "chattr-message", "submit", [message, history, None, None, True, 0, None, strategy]
    )


def test_a_scene_opens_with_greetings_and_each_reply_shows_under_its_speaker(
    start: Start,
) -> None:
    app = start()
    page = Page(app.url)
    assert page.event(None, "load", [])["success"]
    one_to_one = page.stored[next(iter(page.stored))]

    started = start_scene(page, BOTH)
    chat = output(started, 1)
    assert reading(chat) == [("napoleon", "line"), ("einstein", "line")]
    napoleon = app.service.characters.get("napoleon")
    assert " ".join(napoleon.scene_greeting().split()[:8]) in " ".join(texts(chat)[0].split())
    header = texts(chat)[0]
    assert "<strong>Napoleon Bonaparte</strong>" in header
    avatar = re.search(r'<img class="chattr-avatar" src="([^"]+)"', header)
    assert avatar is not None
    served = httpx.get(f"{app.url}/{avatar.group(1)}")
    assert served.status_code == 200 and served.headers["content-type"].startswith("image/")
    stage = output(started, 2)
    assert re.findall(r'data-member="([a-z]+)"', stage) == BOTH
    kept = scene_state(page)
    assert kept["members"] == BOTH and kept["session_id"] != one_to_one
    # The scene's controls show; the one-to-one chat's greeting, undo and regenerate hide.
    assert [u["visible"] for u in started["output"]["data"][4:7]] == [False, False, True]

    answered = send(page, NAMING_BOTH, chat)
    chat = output(answered, 0)
    assert output(answered, 1) == ""  # the message box is emptied
    read = reading(chat)
    assert read[:3] == [("napoleon", "line"), ("einstein", "line"), ("user", NAMING_BOTH)]
    # Each member's line, then its clips, in the order named; nothing still waited for.
    speakers = [who for who, what in read[3:]]
    assert speakers == sorted(speakers, key=lambda who: BOTH.index(who))
    for member in BOTH:
        made = [what for who, what in read[3:] if who == member]
        assert made[0] == "line" and "clip" in made and made[-1] == "whole", read
    replies = [t for t in texts(chat) if "chattr-speaker" in t][2:]
    assert "Napoleon Bonaparte speaks." in replies[0] and "Albert Einstein speaks." in replies[1]
    assert not any("chattr-pending" in t for t in texts(chat))

    # The scene's own memory holds the greetings and the replies, each with its speaker; the
    # one-to-one chat's holds nothing.
    lines = app.service.memory.recent(kept["session_id"], SCENE_KEY)
    assert [t.speaker for t in lines] == [*BOTH, *BOTH]
    assert lines[2].user == NAMING_BOTH and not lines[3].user
    assert app.service.memory.recent(one_to_one, "napoleon") == []
    # "Download my conversation" in a scene is the scene's.
    turns = download(page)["turns"]
    assert [t["character"] for t in turns if t["user"] or t["assistant"]][-2:] == BOTH
    page.close()


def test_members_join_and_leave_and_one_is_let_speak_the_transcript_stays(
    start: Start,
) -> None:
    app = start()
    page = Page(app.url)
    assert page.event(None, "load", [])["success"]
    chat = output(start_scene(page, BOTH), 1)
    chat = output(send(page, NAMING_BOTH, chat), 0)
    session = scene_state(page)["session_id"]

    # Marie Curie joins: the stage has her place (no portrait: her name), the chat stays.
    joined = page.event("chattr-scene-members", "input", [[*BOTH, "curie"], None])
    assert output(joined, 4) is None  # the chat is left as it was
    assert re.findall(r'data-member="([a-z]+)"', output(joined, 2)) == [*BOTH, "curie"]
    assert "<figcaption>Marie Curie</figcaption>" in output(joined, 2)
    assert scene_state(page) == {
        "session_id": session,
        "members": [*BOTH, "curie"],
        "strategy": "natural",
    }
    # Let her speak: she alone answers, with no message, and sees the scene so far.
    spoken = page.event("chattr-scene-speak", "click", ["curie", chat, True, None, "manual"])
    chat = output(spoken, 0)
    assert [who for who, what in reading(chat) if what == "line"][-2:] == ["einstein", "curie"]
    assert ("user", "") not in reading(chat)
    lines = app.service.memory.recent(session, SCENE_KEY)
    assert lines[-1].speaker == "curie" and lines[-1].user == ""
    assert "I heard: Albert Einstein:" in lines[-1].assistant  # the line before hers, named
    # Manual: a message with nobody let speak is heard, and nobody answers.
    quiet = send(page, "Silence, please.", chat, strategy="manual")
    assert reading(output(quiet, 0))[-1] == ("user", "Silence, please.")

    # Napoleon leaves: the next message, naming him, is answered by the others only.
    left = page.event("chattr-scene-members", "input", [["einstein", "curie"], None])
    assert output(left, 0)["members"] == ["einstein", "curie"]
    answered = send(page, "Napoleon, Einstein and Curie, say something.", output(quiet, 0))
    last = [who for who, what in reading(output(answered, 0)) if what == "line"]
    assert last[-2:] == ["einstein", "curie"] and "napoleon" in last  # his earlier lines stay

    # One member is no scene: the members stay as they were.
    alone = page.event("chattr-scene-members", "input", [["curie"], None])
    assert output(alone, 1) == ["einstein", "curie"]
    assert scene_state(page)["members"] == ["einstein", "curie"]
    page.close()


def test_a_reload_restores_the_scene_and_leaving_it_shows_the_chat(start: Start) -> None:
    app = start()
    page = Page(app.url)
    assert page.event(None, "load", [])["success"]
    chat = output(start_scene(page, BOTH), 1)
    page.event("chattr-scene-strategy", "input", ["list", None])
    before = reading(output(send(page, NAMING_BOTH, chat, strategy="list"), 0))

    reloaded = Page(app.url)
    reloaded.stored = dict(page.stored)  # the browser's localStorage
    resumed = reloaded.event(None, "load", [])
    chat = output(resumed, 3)
    read = reading(chat)
    # The transcript, each line under its speaker, with its whole reply's clip.
    assert [r for r in read if r[1] != "clip"] == [r for r in before if r[1] != "clip"]
    assert output(resumed, 7) == BOTH  # the members picked
    assert output(resumed, 8) == "list"
    assert re.findall(r'data-member="([a-z]+)"', output(resumed, 9)) == BOTH
    assert resumed["output"]["data"][13]["visible"] is True  # the scene's controls

    # Picking one character leaves the scene for the chat with that one; so does "Leave scene"
    # (the chat comes back as it was); the scene's id stays for "Forget me".
    picked = reloaded.event("chattr-character", "input", ["einstein", None, None])
    einstein = app.service.characters.get("einstein")
    assert texts(output(picked, 1)) == [einstein.greeting]
    assert scene_state(reloaded)["members"] == []
    reloaded.stored = dict(page.stored)  # back in the scene, as the first page still is
    left = reloaded.event("chattr-scene-leave", "click", [None, None, None])
    curie = app.service.characters.get("curie")
    assert texts(output(left, 1)) == [curie.greeting]
    assert [u["visible"] for u in left["output"]["data"][3:6]] == [True, True, False]
    assert scene_state(reloaded)["members"] == []
    said = send(reloaded, "Just you now.", output(left, 1))
    assert "Just you now." in texts(output(said, 0))
    scene_session = scene_state(page)["session_id"]
    assert len(app.service.memory.recent(scene_session, SCENE_KEY)) == 4
    # "Forget me" deletes the scene too.
    forgot = reloaded.event("chattr-forget", "click", [None, None, None])
    assert forgot["success"], forgot
    assert app.service.memory.recent(scene_session, SCENE_KEY) == []
    page.close()
    reloaded.close()


def test_a_member_whose_speech_fails_keeps_its_text_and_a_refusal_is_an_error(
    start: Start,
) -> None:
    app = start(failing_voice="einstein", turns_per_minute=1)
    page = Page(app.url)
    assert page.event(None, "load", [])["success"]
    chat = output(start_scene(page, BOTH), 1)
    chat = output(send(page, NAMING_BOTH, chat), 0)
    read = reading(chat)
    assert ("napoleon", "clip") in read and ("einstein", "clip") not in read
    einstein = [t for t in texts(chat) if "chattr-by-einstein" in t][-1]
    assert "Albert Einstein speaks." in einstein
    assert "⚠ vocalizr" in texts(chat)[-1]
    # The second message this minute: refused in the gate's words, the chat as it was.
    refused = send(page, "And now?", chat)
    assert not refused["success"]
    assert "Too many messages: at most 1 a minute" in refused["output"]["error"]
    page.close()


def test_a_message_spoken_in_a_scene_is_the_scenes(start: Start, tmp_path: Path) -> None:
    app = start()
    page = Page(app.url)
    assert page.event(None, "load", [])["success"]
    chat = output(start_scene(page, BOTH), 1)
    recording = tmp_path / "said.wav"
    recording.write_bytes(wav(1.0))
    spoken = page.event(
        "chattr-mic", "stop_recording", [page.upload(recording), chat, None, None, True]
    )
    read = reading(output(spoken, 0))
    assert ("user", NAMING_BOTH) in read
    assert [who for who, what in read if what == "line"][2:] == BOTH
    lines = app.service.memory.recent(scene_state(page)["session_id"], SCENE_KEY)
    assert [t.speaker for t in lines][2:] == BOTH and lines[2].user == NAMING_BOTH
    page.close()
