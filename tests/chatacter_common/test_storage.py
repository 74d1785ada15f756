"""The media store interface, the same tests on a folder and on a real S3 server (SeaweedFS):
bytes and ranges, retention, serving with Range from any replica, and start-up checks that name
the setting."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.testclient import TestClient

from chatacter_common.storage import (
    DiskStorage,
    ObjectMissing,
    S3Location,
    S3Storage,
    Storage,
    StoreUnavailable,
    open_storage,
    parse_location,
    parse_range,
    serve_stored,
)
from tests.object_store import BUCKET, SeaweedS3, TcpRelay

DATA = bytes(range(256)) * 40  # 10240 bytes, every offset distinct modulo 256
OURS = re.compile(r"[0-9a-f]{8}\.bin")


@pytest.fixture(params=["disk", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "disk":
        return DiskStorage(tmp_path / "store")
    server: SeaweedS3 = request.getfixturevalue("s3_server")
    return server.storage(tmp_path / "staging")


def name() -> str:
    return f"{uuid.uuid4().hex[:8]}.bin"


def test_what_is_put_is_read_whole_and_in_ranges(storage: Storage) -> None:
    key = name()
    storage.put(key, DATA)
    assert storage.get(key) == DATA
    assert storage.get(key, 1000, 1010) == DATA[1000:1010]
    assert storage.get(key, 10_000) == DATA[10_000:]
    stored = storage.stat(key)
    assert stored is not None and (stored.name, stored.size) == (key, len(DATA))


def test_a_file_written_at_its_staging_path_is_moved_in(storage: Storage) -> None:
    key = name()
    path = storage.staging_path(key)
    path.write_bytes(DATA)
    storage.put_file(key, path)
    assert storage.get(key) == DATA
    if storage.local_path(key) is None:  # a bucket: the local copy is gone
        assert not path.exists()


def test_missing_objects_are_said_so(storage: Storage) -> None:
    key = name()
    assert storage.stat(key) is None
    with pytest.raises(ObjectMissing):
        storage.get(key)
    storage.put(key, b"x")
    assert storage.delete(key) is True
    assert storage.delete(key) is False and storage.stat(key) is None


def test_retention_deletes_old_objects_that_match_and_nothing_else(storage: Storage) -> None:
    ours, theirs = name(), "notes.txt"
    storage.put(ours, b"x")
    storage.put(theirs, b"y")
    assert storage.purge(OURS, older_than_s=3600, what="test files") == 0
    assert storage.stat(ours) is not None
    # A cutoff in the future: everything is old enough, only our names go.
    assert storage.older_than(OURS, older_than_s=-60) == [ours]
    assert storage.purge(OURS, older_than_s=-60, what="test files") == 1
    assert storage.stat(ours) is None and storage.get(theirs) == b"y"


async def test_a_stream_gives_the_range_asked_for(storage: Storage) -> None:
    key = name()
    storage.put(key, DATA)
    chunks = [chunk async for chunk in storage.stream(key, 100, 9000)]
    assert b"".join(chunks) == DATA[100:9000]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", (0, 100)),
        ("bytes=100-", (100, 1000)),
        ("bytes=-10", (990, 1000)),
        ("bytes=900-5000", (900, 1000)),
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("items=0-1", None),
    ],
)
def test_range_headers(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5-2", "bytes=-0"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(ValueError):
        parse_range(header, 1000)


def files_app(storage: Storage) -> TestClient:
    app = FastAPI()

    @app.get("/files/{name}")
    async def get_file(name: str, request: Request) -> Response:
        answer = await serve_stored(storage, name, request, "video/mp4")
        return answer if answer is not None else Response(status_code=404)

    return TestClient(app)


def test_served_files_answer_200_206_and_416(storage: Storage) -> None:
    key = name()
    storage.put(key, DATA)
    client = files_app(storage)
    whole = client.get(f"/files/{key}")
    assert (whole.status_code, whole.content) == (200, DATA)
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    part = client.get(f"/files/{key}", headers={"Range": "bytes=1024-2047"})
    assert (part.status_code, part.content) == (206, DATA[1024:2048])
    assert part.headers["content-range"] == f"bytes 1024-2047/{len(DATA)}"
    assert client.get(f"/files/{key}", headers={"Range": "bytes=99999-"}).status_code == 416
    assert client.get(f"/files/{name()}").status_code == 404


def test_a_file_stored_by_one_replica_is_served_by_another(
    s3_server: SeaweedS3, tmp_path: Path
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    writer = s3_server.storage(tmp_path / "a", prefix)
    reader = files_app(s3_server.storage(tmp_path / "b", prefix))
    key = name()
    path = writer.staging_path(key)
    path.write_bytes(DATA)
    writer.put_file(key, path)
    assert reader.get(f"/files/{key}").content == DATA
    part = reader.get(f"/files/{key}", headers={"Range": "bytes=-16"})
    assert (part.status_code, part.content) == (206, DATA[-16:])


def test_locations() -> None:
    assert parse_location(None) is None and parse_location("") is None
    assert parse_location("local") is None
    assert parse_location("s3://media") == S3Location("media", "")
    assert parse_location("s3://media/chat/replies/") == S3Location("media", "chat/replies")
    for wrong in ("media", "s3://", "s3://Bad_Bucket", "gs://media"):
        with pytest.raises(ValueError, match="s3://BUCKET"):
            parse_location(wrong)


@pytest.fixture
def aws_environment(
    s3_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    environment = s3_server.environment()
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    yield environment


def test_a_working_bucket_opens(aws_environment: dict[str, str], tmp_path: Path) -> None:
    store = open_storage(
        f"s3://{BUCKET}/ok", setting="VOCALIZR_MEDIA_STORE", directory=tmp_path, namespace="x"
    )
    assert isinstance(store, S3Storage) and store.where == f"s3://{BUCKET}/ok/x"


@pytest.mark.parametrize(
    ("value", "variable", "value_set", "said"),
    [
        ("s3://no-such-bucket", None, None, "no bucket 'no-such-bucket'"),
        (f"s3://{BUCKET}", "AWS_SECRET_ACCESS_KEY", "wrong-secret", "refused the keys"),
        (f"s3://{BUCKET}", "AWS_ACCESS_KEY_ID", "nobody", "refused the keys"),
        (f"s3://{BUCKET}", "AWS_ENDPOINT_URL", "http://127.0.0.1:9", "cannot reach the store"),
        ("s3:/typo", None, None, "is not a media store"),
    ],
)
def test_a_store_that_does_not_work_stops_start_up_naming_the_setting(
    aws_environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    value: str,
    variable: str | None,
    value_set: str | None,
    said: str,
) -> None:
    if variable is not None and value_set is not None:
        monkeypatch.setenv(variable, value_set)
    with pytest.raises(StoreUnavailable) as raised:
        open_storage(value, setting="VISUALIZR_MEDIA_STORE", directory=tmp_path, namespace="x")
    message = str(raised.value)
    assert message.startswith("VISUALIZR_MEDIA_STORE") and said in message
    assert "wrong-secret" not in message


async def test_a_store_that_goes_away_fails_its_operations_quickly(
    s3_server: SeaweedS3, tmp_path: Path
) -> None:
    relay = TcpRelay(int(s3_server.endpoint.rsplit(":", 1)[1]))
    location = S3Location(BUCKET, f"test-{uuid.uuid4().hex[:12]}")
    store = S3Storage(location, s3_server.settings(relay.url), staging=tmp_path, namespace="x")
    store.check("CHATTR_MEDIA_STORE")
    store.put("a.bin", b"x")
    relay.cut()
    with pytest.raises(OSError, match=r"could not store b\.bin: cannot connect"):
        store.put("b.bin", b"y")
