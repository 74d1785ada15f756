"""A person's own data through the real app: `export` and `forget` with gradio_client, and the
page's "Download my conversation" / "Forget me", checked in Redis and Qdrant themselves."""

from __future__ import annotations

import json
import uuid

import pytest
import redis
from gradio_client import Client

from chattr.reply import Segment, TurnState
from chattr.turn.personal_data import PersonalData, open_media_index

from ..conftest import REDIS_URL, StartApp
from .support import Page, download


def talk(client: Client, session: str) -> None:
    client.predict("My name is Ada.", "curie", session, False, api_name="/chat")
    client.predict("Tell me about radium.", "curie", session, False, api_name="/chat")
    client.predict("Hello, general.", "napoleon", session, False, api_name="/chat")


def test_both_endpoints_are_listed_under_use_via_api(start_app: StartApp) -> None:
    api = start_app().client().view_api(return_format="dict", print_info=False)
    named = api["named_endpoints"]
    for name in ("/export", "/forget"):
        assert [p["parameter_name"] for p in named[name]["parameters"]] == ["session_id"]


def test_export_returns_every_turn_with_every_character(start_app: StartApp) -> None:
    client = start_app().client()
    session, other = uuid.uuid4().hex, uuid.uuid4().hex
    talk(client, session)
    client.predict("Not mine.", "curie", other, False, api_name="/chat")
    exported = client.predict(session, api_name="/export")
    assert exported["session_id"] == session
    turns = exported["turns"]
    assert [(t["character"], t["user"]) for t in turns] == [
        ("curie", "My name is Ada."),
        ("curie", "Tell me about radium."),
        ("napoleon", "Hello, general."),
    ]
    assert all(t["assistant"].startswith("You said") and t["at_utc"] for t in turns)
    assert "Not mine." not in json.dumps(exported)
    with pytest.raises(Exception, match="session id"):
        client.predict("", api_name="/export")


def test_forget_deletes_short_and_long_term_memory(start_app: StartApp, redis_prefix: str) -> None:
    app = start_app()
    client = app.client()
    session, other = uuid.uuid4().hex, uuid.uuid4().hex
    talk(client, session)
    client.predict("My name is Ada.", "curie", other, False, api_name="/chat")
    retriever = app.service.retriever
    assert retriever is not None
    assert retriever.retrieve("curie", session, "What is my name?").recalled  # long-term kept
    r = redis.Redis.from_url(REDIS_URL)
    assert list(r.scan_iter(f"{redis_prefix}:memory:{session}:*"))

    report = client.predict(session, api_name="/forget")
    assert report["deleted"] == {"turns": 3, "long_term_memory": True, "media_files": 0}
    assert report["not_deleted"] == []
    assert not list(r.scan_iter(f"{redis_prefix}:memory:{session}:*"))
    assert app.service.memory.recent(session, "curie") == []
    assert app.service.memory.recent(session, "napoleon") == []
    assert retriever.retrieve("curie", session, "What is my name?").recalled == []
    assert client.predict(session, api_name="/export")["turns"] == []
    # Another session is untouched.
    assert len(app.service.memory.recent(other, "curie")) == 1
    assert retriever.retrieve("curie", other, "What is my name?").recalled
    r.close()


def test_forget_deletes_the_media_the_session_made(start_app: StartApp) -> None:
    app = start_app()
    session = uuid.uuid4().hex
    media_dir = app.settings.data_dir / "media"
    mine, theirs = f"{uuid.uuid4().hex}.mp4", f"{uuid.uuid4().hex}.wav"
    for name in (mine, theirs):
        (media_dir / name).write_bytes(b"media")
    # What the page and `chat` record when a turn with media finishes.
    state = TurnState(session_id=session, character="curie", message="Hi")
    state.video_url = f"{app.url}/media/{mine}"
    state.segments = [Segment("Hi.", audio_url="http://vocalizr/files/abc.wav")]
    # Noted where the app's own index is (Redis, which every replica shares).
    settings = app.settings
    index = open_media_index(
        settings.data_dir,
        settings.redis_url,
        prefix=settings.redis_prefix,
        retention_s=settings.media_retention_s,
    )
    PersonalData(app.service, settings.data_dir, index).record_turn(state)
    client = app.client()
    assert client.predict(session, api_name="/export")["media"] == [state.video_url]

    report = client.predict(session, api_name="/forget")
    assert report["deleted"]["media_files"] == 1
    assert not (media_dir / mine).exists() and (media_dir / theirs).exists()
    assert any("single-sentence clips" in line for line in report["not_deleted"])
    (media_dir / theirs).unlink()


def test_the_page_downloads_and_forgets(start_app: StartApp) -> None:
    app = start_app()
    page = Page(app.url)
    assert page.event(None, "load", [])["success"]  # the page makes its own session
    for message in ("My name is Ada.", "Tell me about radium."):
        said = page.event("chattr-message", "submit", [message, [], None, None, False, 0])
        assert said["success"], said
    exported = download(page)
    session = exported["session_id"]  # the page keeps it in the browser (a gr.BrowserState)
    # The page's conversation opens with the greeting it chose: a turn with no user part.
    user_lines = [t["user"] for t in exported["turns"] if t["user"]]
    assert user_lines == ["My name is Ada.", "Tell me about radium."]
    character = exported["turns"][-1]["character"]  # the page's first character
    kept = [t for t in app.service.memory.recent(session, character) if t.user]
    assert [t.user for t in kept] == user_lines

    forgot = page.event("chattr-forget", "click", [None, None])
    assert forgot["success"], forgot
    assert app.service.memory.recent(session, character) == []
    after = download(page)  # the page started over in a fresh, empty session
    assert after["session_id"] != session and after["turns"] == []
    page.close()
