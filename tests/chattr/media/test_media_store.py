"""chattr's joined replies in an S3 bucket (a real SeaweedFS): a reply joined by one replica is
served by another at `/media/<name>` (200, 206), forgetting deletes it from the bucket, retention
sweeps the bucket, a bucket that fails mid-turn is an error on the turn that keeps its text, and
one that does not work at start-up stops chattr naming the setting."""

from __future__ import annotations

import uuid
import wave
from io import BytesIO
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from chatacter_common.storage import S3Location, S3Storage
from chattr.__main__ import main
from chattr.characters.character_set import load_characters
from chattr.media.fanout import FanoutOptions, MediaFanout
from chattr.media.store import MediaStore
from chattr.memory import open_memory
from chattr.reply import TurnState
from chattr.run.assembly import create_app
from chattr.settings import Settings, get_settings
from chattr.turn.personal_data import PersonalData
from chattr.turn.service import ChatService
from tests.object_store import BUCKET, SeaweedS3, TcpRelay

from ...conftest import CHARACTERS
from ..fake_media import FakeVocalizr

pytestmark = pytest.mark.slow

REPLY = "Austerlitz was my finest day. The sun rose over the Pratzen."


@pytest.fixture
def location(s3_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> str:
    for variable, value in s3_server.environment().items():
        monkeypatch.setenv(variable, value)
    return f"s3://{BUCKET}/test-{uuid.uuid4().hex[:12]}"


def settings(data_dir: Path, location: str) -> Settings:
    return Settings(
        llm_base_url="http://127.0.0.1:9",
        characters_dir=CHARACTERS,
        data_dir=data_dir,
        redis_url=None,
        media_store=location,
    )


def chat(store: MediaStore | None, vocalizr: FakeVocalizr | None = None) -> ChatService:
    media = None
    if store is not None:
        media = MediaFanout(
            (vocalizr or FakeVocalizr()).client(),
            None,
            store=store,
            public_url="http://chattr.test",
            options=FanoutOptions(),
        )
    return ChatService(
        characters=load_characters(CHARACTERS),
        memory=open_memory(None, max_turns=10, ttl_s=3600),
        retriever=None,
        llm=GenericFakeChatModel(messages=iter([AIMessage(content=REPLY)] * 10)),
        media=media,
    )


async def last_state(service: ChatService, session: str = "session-1") -> TurnState:
    states = [state async for state in service.run("Tell me of Austerlitz.", "napoleon", session)]
    assert states and states[-1].done
    return states[-1]


async def test_a_reply_joined_by_one_replica_is_served_by_another(
    location: str, tmp_path: Path
) -> None:
    a = chat(MediaStore.open(tmp_path / "a", location))
    last = await last_state(a)
    assert last.errors == [] and last.audio_url is not None
    name = MediaStore.name_in_url(last.audio_url)
    assert name is not None
    assert not (tmp_path / "a" / "media" / name).exists()  # in the bucket only

    b = create_app(settings(tmp_path / "b", location), chat(None))
    http = TestClient(b)
    whole = http.get(f"/media/{name}")
    assert whole.status_code == 200 and whole.headers["content-type"].startswith("audio/")
    with wave.open(BytesIO(whole.content)) as joined:
        assert joined.getnframes() > 0
    part = http.get(f"/media/{name}", headers={"Range": "bytes=4-7"})
    assert (part.status_code, part.content) == (206, whole.content[4:8])
    assert http.get(f"/media/{uuid.uuid4().hex}.wav").status_code == 404

    # Forgetting the conversation on A deletes the reply from the bucket: B has it no more.
    personal = PersonalData(a, tmp_path / "a")
    personal.record_turn(last)  # as the page and the API do after each turn
    report = personal.forget("session-1").to_api()
    assert report["deleted"]["media_files"] == 1
    assert not any("media file" in line for line in report["not_deleted"])
    assert http.get(f"/media/{name}").status_code == 404


async def test_retention_deletes_joined_replies_from_the_bucket(
    location: str, tmp_path: Path
) -> None:
    store = MediaStore.open(tmp_path, location)
    name = store.publish(b"RIFF", "wav")
    assert store.purge(older_than_s=3600) == 0
    assert store.storage.stat(name) is not None
    assert store.purge(older_than_s=-60) == 1
    assert store.storage.stat(name) is None


async def test_a_store_failing_mid_turn_is_an_error_of_the_turn_that_keeps_its_text(
    s3_server: SeaweedS3, tmp_path: Path
) -> None:
    relay = TcpRelay(int(s3_server.endpoint.rsplit(":", 1)[1]))
    storage = S3Storage(
        S3Location(BUCKET, f"test-{uuid.uuid4().hex[:12]}"),
        s3_server.settings(relay.url),
        staging=tmp_path / "media",
        namespace="chattr",
    )
    storage.check("CHATTR_MEDIA_STORE")  # it worked at start-up
    service = chat(MediaStore(tmp_path / "media", storage))
    relay.cut()
    last = await last_state(service)
    assert last.text == REPLY
    assert all(segment.audio_url for segment in last.segments)  # each sentence's speech
    assert last.audio_url is None
    assert [(e.service, e.detail.split(":")[0]) for e in last.errors] == [
        ("media store", "could not store the joined audio")
    ]
    assert "cannot connect" in last.errors[0].detail
    assert service.memory.recent("session-1", "napoleon")[-1].assistant == REPLY


def test_a_wrong_bucket_stops_start_up_naming_the_setting(
    location: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CHATTR_MEDIA_STORE", "s3://no-such-bucket")
    monkeypatch.setenv("CHATTR_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert main([]) == 2
    finally:
        get_settings.cache_clear()
    error = capsys.readouterr().err
    assert error.startswith("error: CHATTR_MEDIA_STORE=s3://no-such-bucket: no bucket")
