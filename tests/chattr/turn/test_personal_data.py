"""Which media a session made is noted where every replica finds it: Redis when chattr has one."""

from __future__ import annotations

import uuid
from pathlib import Path

from chattr.characters.character_set import load_characters
from chattr.memory import open_memory
from chattr.reply import Segment, TurnState
from chattr.turn.personal_data import (
    DiskMediaIndex,
    PersonalData,
    RedisMediaIndex,
    open_media_index,
)
from chattr.turn.service import ChatService

from ...conftest import CHARACTERS


def personal(data_dir: Path, redis_url: str | None, prefix: str) -> PersonalData:
    """One replica's export and forget: its own data folder, the Redis it shares."""
    chat = ChatService(
        characters=load_characters(CHARACTERS),
        memory=open_memory(None, max_turns=4, ttl_s=60),
        retriever=None,
        llm=None,
    )
    index = open_media_index(data_dir, redis_url, prefix=prefix, retention_s=3600)
    return PersonalData(chat, data_dir, index)


def finished_turn(session: str, name: str) -> TurnState:
    state = TurnState(session_id=session, character="einstein", message="Hi")
    state.audio_url = f"http://chattr.test/media/{name}"
    state.segments = [Segment("Hi.", audio_url="http://vocalizr.test/files/abc.wav")]
    return state


def test_forget_on_one_replica_finds_the_media_another_made(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    a = personal(tmp_path / "a", redis_url, redis_prefix)
    b = personal(tmp_path / "b", redis_url, redis_prefix)
    assert isinstance(a.index, RedisMediaIndex)
    session, name = uuid.uuid4().hex, f"{uuid.uuid4().hex}.wav"
    state = finished_turn(session, name)
    a.record_turn(state)
    assert b.export(session)["media"] == [f"http://chattr.test/media/{name}"]

    (noted,) = b.turn_media(session)
    assert (noted.character, noted.user, noted.audio_url) == ("einstein", "Hi", state.audio_url)
    report = b.forget(session)
    assert report.media == 0  # already gone from B's store (this test's stores are apart)
    assert report.not_deleted == [
        "1 single-sentence clips kept by the speech and video services; they delete them when "
        "their retention ends"
    ]
    assert a.export(session)["media"] == []  # the list went with it, for every replica


def test_without_redis_the_list_is_on_this_replicas_disk(tmp_path: Path) -> None:
    index = open_media_index(tmp_path, None, prefix="unused", retention_s=3600)
    assert isinstance(index, DiskMediaIndex) and index.folder == tmp_path / "media-sessions"


def test_an_unreachable_redis_costs_forget_a_line_not_the_turn(tmp_path: Path) -> None:
    gone = personal(tmp_path, "redis://127.0.0.1:1/0", "gone")
    session = uuid.uuid4().hex
    gone.record_turn(finished_turn(session, f"{uuid.uuid4().hex}.wav"))  # logged, not raised
    report = gone.forget(session)
    assert [line.split(":")[0] for line in report.not_deleted] == ["media"]
    assert "Redis unreachable" in report.not_deleted[0]


def test_an_index_written_before_turns_were_noted_still_serves_forget(tmp_path: Path) -> None:
    index = DiskMediaIndex(tmp_path / "media-sessions")
    index.record("old-session", "http://chattr.test/media/" + "b" * 32 + ".wav")
    data = PersonalData(personal(tmp_path, None, "unused").service, tmp_path, index)
    assert data.export("old-session")["media"] == ["http://chattr.test/media/" + "b" * 32 + ".wav"]
