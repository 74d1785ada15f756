"""visualizr with its videos in an S3 bucket (a real SeaweedFS): a video rendered by one replica
is served by another, whole and by Range; a store that does not work stops start-up."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import av
import httpx
import pytest

from tests.object_store import BUCKET, SeaweedS3
from visualizr.api import create_app
from visualizr.settings import Settings

from .visualizr_testkit import AudioHost, make_settings, running_server

pytestmark = pytest.mark.slow


@pytest.fixture
def bucket(s3_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> str:
    for variable, value in s3_server.environment().items():
        monkeypatch.setenv(variable, value)
    return f"s3://{BUCKET}/test-{uuid.uuid4().hex[:12]}"


def test_a_video_rendered_by_one_replica_is_served_by_another(
    bucket: str,
    tmp_path: Path,
    characters_dir: Path,
    audio_host: AudioHost,
    spoken_wav: bytes,
) -> None:
    a = make_settings(tmp_path / "a", characters_dir, media_store=bucket)
    b = make_settings(tmp_path / "b", characters_dir, media_store=bucket)
    with running_server(a) as url_a, running_server(b) as url_b:
        body = {"audio_url": audio_host.publish("stored.wav", spoken_wav), "portrait": "einstein"}
        made = httpx.post(f"{url_a}/v1/videos", json=body, timeout=120)
        assert made.status_code == 200, made.text
        file_id = made.json()["id"]
        assert not (a.data_dir / "videos" / file_id).exists()  # in the bucket only
        whole = httpx.get(f"{url_b}/files/{file_id}", timeout=30)
        assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
        with av.open(io.BytesIO(whole.content)) as video:
            assert video.streams.video[0].codec_context.name == "h264"
        size = len(whole.content)
        part = httpx.get(f"{url_b}/files/{file_id}", headers={"Range": "bytes=100-"}, timeout=30)
        assert (part.status_code, part.content) == (206, whole.content[100:])
        assert part.headers["content-range"] == f"bytes 100-{size - 1}/{size}"


def test_a_wrong_bucket_stops_start_up_naming_the_setting(bucket: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, ui=False, media_store="s3://no-such-bucket/videos")
    with pytest.raises(OSError, match=r"^VISUALIZR_MEDIA_STORE=s3://no-such-bucket/videos: "):
        create_app(settings)
