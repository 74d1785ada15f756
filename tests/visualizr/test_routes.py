"""The routes in-process: the service is swapped through FastAPI's dependency overrides, so a
fake renderer reaches each failure path in milliseconds (no server, no models, no lifespan)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from fastapi import FastAPI

from tests.in_process import assert_counted, assert_refused, overridden
from visualizr.api import create_app
from visualizr.dependencies import get_service
from visualizr.errors import NoFace
from visualizr.render import Renderer, VideoResult
from visualizr.service import VideoJob, VideoService
from visualizr.settings import Settings

PUBLIC_URL = "http://video.example:9000"
UPLOAD = {"audio": ("speech.wav", b"RIFF"), "portrait": ("face.png", b"PNG")}


class FakeVideoService(VideoService):
    """The real service (queue, files, request parsing) with `render` replaced by `make`."""

    def __init__(self, settings: Settings, make: Callable[[VideoService, VideoJob], VideoResult]):
        super().__init__(settings)
        self.make = make
        self.renderer = cast(Renderer, SimpleNamespace(engine=SimpleNamespace(name="fake")))

    async def render(self, job: VideoJob) -> VideoResult:
        return self.make(self, job)


def stored_video(service: VideoService, job: VideoJob) -> VideoResult:
    _, path = service.files.new_path()
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    return VideoResult(path, 1.0, job.fps, job.fps, job.size, 0.01)


def no_face(service: VideoService, job: VideoJob) -> VideoResult:
    raise NoFace("no face found in the portrait; upload a photo or painting of a face")


def bug(service: VideoService, job: VideoJob) -> VideoResult:
    raise RuntimeError("index out of range in /srv/visualizr/render.py")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        characters_dir=tmp_path / "none",
        public_url=PUBLIC_URL,
        vocalizr_url="http://127.0.0.1:9",
        ui=False,
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


def test_a_video_is_stored_and_served_at_the_public_url(app: FastAPI, settings: Settings) -> None:
    with overridden(app, {get_service: FakeVideoService(settings, stored_video)}) as client:
        answer = client.post("/v1/videos", files=UPLOAD, data={"fps": "20", "size": "256"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        served = client.get(f"/files/{body['id']}")
    assert (body["engine"], body["fps"], body["size"]) == ("fake", 20, 256)
    assert body["url"] == f"{PUBLIC_URL}/files/{body['id']}"
    assert served.status_code == 200 and served.headers["content-type"] == "video/mp4"


def test_bound_to_all_interfaces_file_urls_name_the_address_the_caller_used(
    settings: Settings,
) -> None:
    on_all = settings.model_copy(update={"host": "0.0.0.0", "public_url": None})
    app = create_app(on_all)
    with overridden(app, {get_service: FakeVideoService(on_all, stored_video)}) as client:
        # As another machine reaches it:
        body = client.post("http://video.lan:8002/v1/videos", files=UPLOAD).json()
    assert body["url"] == f"http://video.lan:8002/files/{body['id']}"


def test_the_engines_refusal_is_its_own_4xx(app: FastAPI, settings: Settings) -> None:
    with overridden(app, {get_service: FakeVideoService(settings, no_face)}) as client:
        answer = client.post("/v1/videos", files=UPLOAD)
    assert (answer.status_code, answer.json()["error"]) == (422, "no_face")


def test_a_bug_is_a_500_that_points_to_the_log_not_the_exception(
    app: FastAPI, settings: Settings
) -> None:
    with overridden(app, {get_service: FakeVideoService(settings, bug)}) as client:
        answer = client.post("/v1/videos", files=UPLOAD)
    assert (answer.status_code, answer.json()["error"]) == (500, "internal")
    assert "log" in answer.json()["detail"] and "/srv" not in answer.text


def test_a_full_queue_is_503_with_retry_after_and_counted(app: FastAPI, settings: Settings) -> None:
    service = FakeVideoService(settings.model_copy(update={"max_queue": 1}), stored_video)
    release = service.jobs.acquire()  # the one place, taken
    with overridden(app, {get_service: service}) as client:
        assert_refused(client.post("/v1/videos", files=UPLOAD), 503, "queue_full")
        release()
        assert_counted(client, "visualizr", "/v1/videos", 503, "queue_full")


def test_loading_and_failed_loading_are_503s(app: FastAPI, settings: Settings) -> None:
    service = VideoService(settings)  # never loaded

    def fail() -> tuple[str, str]:
        raise FileNotFoundError("no weights in /weights/musetalk")

    with overridden(app, {get_service: service}) as client:
        loading = client.post("/v1/videos", files=UPLOAD)
        assert not service.health.load(fail, "the musetalk engine failed to load")
        failed = client.post("/v1/videos", files=UPLOAD)
    assert (loading.status_code, loading.json()["error"]) == (503, "loading")
    assert (failed.status_code, failed.json()["error"]) == (503, "engine_unavailable")
    assert "/weights" not in failed.json()["detail"]


def test_an_audio_url_off_the_allow_list_is_refused_before_connecting(
    app: FastAPI, settings: Settings
) -> None:
    started = time.monotonic()
    with overridden(app, {get_service: FakeVideoService(settings, stored_video)}) as client:
        answer = client.post(
            "/v1/videos",
            data={"audio_url": "http://10.0.0.1:8001/a.wav"},
            files={"portrait": UPLOAD["portrait"]},
        )
    assert (answer.status_code, answer.json()["error"]) == (400, "host_not_allowed")
    assert time.monotonic() - started < 2


def test_files_that_are_not_ids_are_404(app: FastAPI, settings: Settings) -> None:
    with overridden(app, {get_service: FakeVideoService(settings, stored_video)}) as client:
        answers = [
            client.get(f"/files/{name}")
            for name in ("..%2Fsettings.py", "0" * 32 + ".wav", "0" * 32 + ".mp4")
        ]
    for answer in answers:
        assert (answer.status_code, answer.json()["error"]) == (404, "not_found")
