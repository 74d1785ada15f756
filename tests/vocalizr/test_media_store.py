"""vocalizr with its files in an S3 bucket (a real SeaweedFS): two replicas over one bucket, a
file made by one served by the other (200, 206 for a Range, MP3 on request), retention on the
bucket, and a store that does not work stopping start-up with the setting's name."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.object_store import BUCKET, SeaweedS3
from tests.vocalizr.support import serve
from vocalizr.__main__ import main
from vocalizr.api import create_app
from vocalizr.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def bucket_settings(
    s3_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch, characters_dir: Path, tmp_path: Path
) -> Settings:
    for variable, value in s3_server.environment().items():
        monkeypatch.setenv(variable, value)
    return Settings(
        characters_dir=characters_dir,
        data_dir=tmp_path / "a",
        media_store=f"s3://{BUCKET}/test-{uuid.uuid4().hex[:12]}",
        piper_threads=1,
        ui=False,
        stt_engine="none",
    )


def test_a_file_made_by_one_replica_is_served_by_another(
    bucket_settings: Settings, tmp_path: Path
) -> None:
    other = bucket_settings.model_copy(update={"data_dir": tmp_path / "b"})
    with serve(bucket_settings) as a, serve(other) as b, a.client() as to_a, b.client() as to_b:
        made = to_a.post("/v1/speech", json={"text": "Stored once.", "voice": "ada"})
        assert made.status_code == 200, made.text
        file_id = made.json()["id"]
        # Uploaded, not kept in A's folder: B can only answer from the bucket.
        assert not (a.settings.data_dir / "files" / file_id).exists()
        whole = to_b.get(f"/files/{file_id}")
        assert whole.status_code == 200 and whole.headers["content-type"] == "audio/wav"
        assert whole.content[:4] == b"RIFF" and len(whole.content) > 10_000
        part = to_b.get(f"/files/{file_id}", headers={"Range": "bytes=0-43"})
        assert (part.status_code, part.content) == (206, whole.content[:44])
        assert part.headers["content-range"] == f"bytes 0-43/{len(whole.content)}"
        assert to_a.get(f"/files/{file_id}").content == whole.content
        mp3 = to_b.get(f"/files/{file_id}", params={"format": "mp3"})
        assert mp3.status_code == 200 and mp3.headers["content-type"] == "audio/mpeg"
        missing = to_b.get(f"/files/{uuid.uuid4().hex}.wav")
        assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
        # Retention (the sweep each replica runs) deletes it from the bucket, for every replica.
        assert b.app.state.service.files.purge(older_than_s=-60) >= 1
        assert to_a.get(f"/files/{file_id}").status_code == 404


def test_a_wrong_bucket_stops_start_up_naming_the_setting(bucket_settings: Settings) -> None:
    wrong = bucket_settings.model_copy(update={"media_store": "s3://no-such-bucket"})
    with pytest.raises(OSError, match=r"^VOCALIZR_MEDIA_STORE=s3://no-such-bucket: no bucket"):
        create_app(wrong)


def test_the_command_line_says_what_to_fix(
    bucket_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOCALIZR_MEDIA_STORE", f"s3://{BUCKET}")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    monkeypatch.setenv("VOCALIZR_DATA_DIR", str(bucket_settings.data_dir))
    with pytest.raises(SystemExit) as stopped:
        main(["--port", "9"])
    message = str(stopped.value.code)
    assert message.startswith("error: VOCALIZR_MEDIA_STORE=s3://media: ")
    assert "refused the keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY" in message
