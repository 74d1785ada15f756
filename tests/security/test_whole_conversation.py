"""The conversation whole in both memories, through the real app (Redis, Qdrant Edge): undo and
regenerate take a turn out of both, page and API agree; export gives every turn, oldest first,
with the media still kept; forget leaves nothing export could find."""

from __future__ import annotations

import json
import uuid
from typing import Any

import redis
from gradio_client import Client

from chattr.knowledge.retrieval import Retriever
from chattr.memory import Turn
from chattr.turn.personal_data import PersonalData

from ..conftest import REDIS_URL, RunningApp, StartApp
from .support import Page, click, download


def say(client: Client, message: str, session: str, character: str = "curie") -> str:
    reply: dict[str, Any] = client.predict(message, character, session, False, api_name="/chat")
    return str(reply["text"])


def retriever_of(app: RunningApp) -> Retriever:
    retriever = app.service.retriever
    assert retriever is not None and retriever.ready
    return retriever


def long_term(app: RunningApp, session: str) -> list[str]:
    return [turn.user for turn in retriever_of(app).session_turns(session)]


def test_undo_takes_the_turn_out_of_both_memories(start_app: StartApp) -> None:
    app = start_app()
    client = app.client()
    session = uuid.uuid4().hex
    for message in ("My name is Ada.", "I keep bees.", "My password is hunter2."):
        say(client, message, session)
    say(client, "Hello, general.", session, "napoleon")
    assert long_term(app, session) == [
        "My name is Ada.",
        "I keep bees.",
        "My password is hunter2.",
        "Hello, general.",
    ]

    undone = client.predict(session, "curie", api_name="/undo")
    assert undone["undone"]["user"] == "My password is hunter2."
    assert long_term(app, session) == ["My name is Ada.", "I keep bees.", "Hello, general."]
    recalled = retriever_of(app).retrieve("curie", session, "What is my password?").recalled
    assert recalled and all("hunter2" not in hit.text for hit in recalled)
    assert [t.user for t in app.service.memory.recent(session, "curie")] == [
        "My name is Ada.",
        "I keep bees.",
    ]
    exported = client.predict(session, api_name="/export")
    assert "hunter2" not in json.dumps(exported)
    assert [t["user"] for t in exported["turns"]] == [
        "My name is Ada.",
        "I keep bees.",
        "Hello, general.",
    ]
    # Napoleon's conversation is its own: undoing Curie's again leaves it alone.
    assert client.predict(session, "curie", api_name="/undo")["undone"]["user"] == "I keep bees."
    assert long_term(app, session) == ["My name is Ada.", "Hello, general."]


def user_lines(history: list[dict[str, Any]]) -> list[str]:
    lines = []
    for message in history:
        if message["role"] == "user":
            content = message["content"]
            parts = content if isinstance(content, list) else [{"text": content}]
            lines.append("".join(str(part.get("text", "")) for part in parts))
    return lines


def test_the_pages_regenerate_and_undo_agree_with_the_api(start_app: StartApp) -> None:
    app = start_app()
    page = Page(app.url)
    assert page.event(None, "load", [])["success"]
    history: list[dict[str, Any]] = []
    for message in ("My name is Ada.", "I keep bees."):
        said = page.event("chattr-message", "submit", [message, history, None, None, False, 0])
        assert said["success"], said
        history = said["output"]["data"][0]
    regenerated = click(page, "Regenerate", [history, None, None, False, 0])
    assert regenerated["success"], regenerated
    history = regenerated["output"]["data"][0]
    assert user_lines(history) == ["My name is Ada.", "I keep bees."]

    exported = download(page)
    session = exported["session_id"]
    client = app.client()
    api_view = client.predict(session, api_name="/export")
    api_lines = [t["user"] for t in api_view["turns"] if t["user"]]
    assert api_lines == user_lines(history)  # the regenerated turn once, not twice
    assert long_term(app, session) == user_lines(history)

    undone = click(page, "Undo last turn", [history, None, None])
    assert undone["success"], undone
    history = undone["output"]["data"][0]
    assert user_lines(history) == ["My name is Ada."]
    api_view = client.predict(session, api_name="/export")
    assert [t["user"] for t in api_view["turns"] if t["user"]] == ["My name is Ada."]
    assert long_term(app, session) == ["My name is Ada."]
    page.close()


def test_export_gives_the_whole_conversation_and_forget_leaves_none_of_it(
    start_app: StartApp, redis_prefix: str
) -> None:
    app = start_app(memory_turns=2)  # short-term memory holds far less than the conversation
    client = app.client()
    session, other = uuid.uuid4().hex, uuid.uuid4().hex
    messages = [f"Message number {n}." for n in range(5)]
    for message in messages[:3]:
        say(client, message, session)
    say(client, "Hello, general.", session, "napoleon")
    for message in messages[3:]:
        say(client, message, session)
    say(client, "Not mine.", other)
    assert len(app.service.memory.recent(session, "curie")) == 2

    # A turn whose joined video is still kept, and one whose video has expired.
    media_dir = app.settings.data_dir / "media"
    kept, expired = f"{uuid.uuid4().hex}.mp4", f"{uuid.uuid4().hex}.mp4"
    (media_dir / kept).write_bytes(b"video")
    personal = PersonalData(app.service, app.settings.data_dir)
    retriever = retriever_of(app)
    for text, name in (("With a video.", kept), ("With an expired video.", expired)):
        turn = Turn(text, f"You said {text}", media=(f"{app.url}/media/{name}",))
        app.service.memory.append(session, "napoleon", turn)
        retriever.remember(
            "napoleon", session, turn.user, turn.assistant, None, at=turn.at, media=turn.media
        )

    exported = client.predict(session, api_name="/export")
    assert [(t["character"], t["user"]) for t in exported["turns"]] == [
        ("curie", messages[0]),
        ("curie", messages[1]),
        ("curie", messages[2]),
        ("napoleon", "Hello, general."),
        ("curie", messages[3]),
        ("curie", messages[4]),
        ("napoleon", "With a video."),
        ("napoleon", "With an expired video."),
    ]
    assert [t["media"] for t in exported["turns"][-2:]] == [[f"{app.url}/media/{kept}"], []]
    assert exported["not_exported"] == []
    assert "Not mine." not in json.dumps(exported)
    readable = personal.export_files(session)[1].read_text(encoding="utf-8")
    positions = [readable.index(f"**You:** {t['user']}") for t in exported["turns"]]
    assert positions == sorted(positions)  # oldest first in the readable file too

    report = client.predict(session, api_name="/forget")
    assert report["not_deleted"] == [] and report["deleted"]["long_term_memory"]
    # Nothing the export held is left anywhere: Redis, Qdrant, the media store.
    r = redis.Redis.from_url(REDIS_URL)
    # Rate-limit windows hold only times, and expire with their window.
    left = [k for k in r.scan_iter(f"{redis_prefix}:*") if session.encode() in k]
    assert [k for k in left if b":rate:" not in k] == []
    r.close()
    assert retriever.session_turns(session) == []
    for turn in exported["turns"]:
        assert not retriever.retrieve(turn["character"], session, turn["user"]).recalled
    assert not (media_dir / kept).exists()
    after = client.predict(session, api_name="/export")
    assert after["turns"] == [] and after["media"] == []
    assert [t["user"] for t in client.predict(other, api_name="/export")["turns"]] == ["Not mine."]
