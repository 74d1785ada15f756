"""The routes in-process: the service is swapped through FastAPI's dependency overrides, so a
fake engine reaches each failure path in milliseconds (no server, no model, no lifespan)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from fastapi import FastAPI

from chatacter_common.service import Health, JobQueue, get_health
from tests.in_process import assert_counted, assert_refused, overridden
from vocalizr.api import create_app
from vocalizr.audio import Clip
from vocalizr.dependencies import get_service
from vocalizr.engines.base import SpeechEngine
from vocalizr.files import FileStore
from vocalizr.metrics import Metrics
from vocalizr.service import SpeechService
from vocalizr.settings import Settings
from vocalizr.voices import VoiceRegistry

PUBLIC_URL = "http://speech.example:9000"
HELLO = {"text": "Hello.", "voice": "default"}


class FakeEngine(SpeechEngine):
    """Speaks whatever `speak` returns for the text (or raises what it raises)."""

    name = "fake"
    sample_rate = 16_000
    languages = ("en",)

    def __init__(self, speak: Callable[[str], npt.NDArray[np.float32]]) -> None:
        self.speak = speak

    def load(self) -> None:
        pass

    def add_voice(self, voice_id: str, clip: Clip) -> None:
        pass

    def synthesize(
        self, text: str, voice_id: str, language: str, speed: float, emotion: str = "neutral"
    ) -> npt.NDArray[np.float32]:
        return self.speak(text)


def one_second(text: str) -> npt.NDArray[np.float32]:
    return np.zeros(16_000, np.float32)


def broken(text: str) -> npt.NDArray[np.float32]:
    raise RuntimeError("the model fell over at /weights/secret/model.onnx")


def failing_load() -> tuple[str, str]:
    raise RuntimeError("no model at /weights/secret/model.onnx")


def fake_service(
    folder: Path, speak: Callable[[str], npt.NDArray[np.float32]], max_queue: int = 4
) -> SpeechService:
    """The real service (checks, queue, files) on a fake engine, loaded."""
    engine = FakeEngine(speak)
    jobs = JobQueue(max_queue, 1, "speech jobs")
    voices = VoiceRegistry(engine, folder / "characters", folder / "voices", 3.0, 30.0)
    service = SpeechService(engine, voices, FileStore(folder / "files"), jobs, Metrics(jobs), 200)
    assert service.health.load(lambda: (engine.name, engine.device), "the fake failed to load")
    return service


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    settings = Settings(
        data_dir=tmp_path / "data",
        characters_dir=tmp_path / "none",
        public_url=PUBLIC_URL,
        stt_engine="none",
        ui=False,
    )
    return create_app(settings)


def test_speech_is_stored_and_served_at_the_public_url(app: FastAPI, tmp_path: Path) -> None:
    with overridden(app, {get_service: fake_service(tmp_path, one_second)}) as client:
        answer = client.post("/v1/speech", json=HELLO)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["engine"] == "fake" and body["duration_s"] == 1.0
        assert body["url"] == f"{PUBLIC_URL}/files/{body['id']}"
        # An engine that does not say when its words are spoken: spread over the audio.
        assert body["word_timing"] == "estimated"
        assert body["words"] == [{"word": "Hello.", "start_s": 0.0, "end_s": 1.0}]
        served = client.get(f"/files/{body['id']}")
    assert served.status_code == 200 and served.headers["content-type"] == "audio/wav"


def test_bound_to_all_interfaces_file_urls_name_the_address_the_caller_used(
    tmp_path: Path,
) -> None:
    settings = Settings(
        host="0.0.0.0",
        data_dir=tmp_path / "data",
        characters_dir=tmp_path,
        stt_engine="none",
        ui=False,
    )
    app = create_app(settings)
    with overridden(app, {get_service: fake_service(tmp_path, one_second)}) as client:
        # As another machine reaches it:
        body = client.post("http://speech.lan:8001/v1/speech", json=HELLO).json()
    assert body["url"] == f"http://speech.lan:8001/files/{body['id']}"


def test_an_engine_that_raises_is_a_422_that_names_it_not_its_message(
    app: FastAPI, tmp_path: Path
) -> None:
    with overridden(app, {get_service: fake_service(tmp_path, broken)}) as client:
        answer = client.post("/v1/speech", json=HELLO)
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "synthesis_failed"
    assert "fake" in body["detail"] and "RuntimeError" in body["detail"]
    assert "/weights" not in body["detail"]


def test_an_engine_that_says_nothing_is_nothing_to_say(app: FastAPI, tmp_path: Path) -> None:
    silent = fake_service(tmp_path, lambda text: np.zeros(0, np.float32))
    with overridden(app, {get_service: silent}) as client:
        answer = client.post("/v1/speech", json={"text": "§§§", "voice": "default"})
    assert (answer.status_code, answer.json()["error"]) == (422, "nothing_to_say")


def test_a_full_queue_is_503_with_retry_after_and_counted(app: FastAPI, tmp_path: Path) -> None:
    service = fake_service(tmp_path, one_second, max_queue=1)
    release = service.jobs.acquire()  # the one place, taken
    with overridden(app, {get_service: service}) as client:
        assert_refused(client.post("/v1/speech", json=HELLO), 503, "queue_full")
        release()
        assert_counted(client, "vocalizr", "/v1/speech", 503, "queue_full")


def test_a_service_still_loading_refuses_speech_and_uploads(app: FastAPI, tmp_path: Path) -> None:
    service = fake_service(tmp_path, one_second)
    service.health = Health()  # as before the engine has loaded
    with overridden(app, {get_service: service}) as client:
        speech = client.post("/v1/speech", json=HELLO)
        upload = client.post("/v1/voices", files={"file": ("clip.wav", b"RIFF")})
    for answer in (speech, upload):
        assert (answer.status_code, answer.json()["error"]) == (503, "loading")
        assert answer.headers["Retry-After"].isdigit()


def test_healthz_says_why_loading_failed_without_server_paths(app: FastAPI) -> None:
    health = Health()
    assert not health.load(failing_load, "the fake engine failed to load")
    with overridden(app, {get_health: health}) as client:
        answer = client.get("/healthz")
    assert answer.status_code == 503
    body = answer.json()
    assert (body["status"], body["error"]) == ("error", "engine_unavailable")
    assert body["detail"].startswith("the fake engine failed to load: ")
    assert "/weights" not in body["detail"] and "<path>" in body["detail"]


@pytest.mark.parametrize("name", ["..%2F..%2Fetc%2Fpasswd", "0" * 32 + ".mp4", "0" * 32 + ".wav"])
def test_a_file_that_is_not_a_live_id_is_404(app: FastAPI, tmp_path: Path, name: str) -> None:
    with overridden(app, {get_service: fake_service(tmp_path, one_second)}) as client:
        answer = client.get(f"/files/{name}", params={"format": "mp3"})
    assert (answer.status_code, answer.json()["error"]) == (404, "not_found")
