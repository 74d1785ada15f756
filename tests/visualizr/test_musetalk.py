"""The diffusers engine end to end on CPU with tiny random weights in the MuseTalk v1.5 layout:
the real loading and rendering code, checked for shapes, frame count, A/V sync and file validity."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest
from fastapi.testclient import TestClient

from visualizr.api import create_app
from visualizr.engines.musetalk_random import write_random_checkpoint

from .visualizr_testkit import make_settings, running_server, speech_mono, wav_bytes


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = write_random_checkpoint(tmp_path_factory.mktemp("musetalk"))
    assert (folder / "musetalkV15" / "musetalk.json").is_file()
    assert (folder / "musetalkV15" / "unet.pth").is_file()
    assert (folder / "sd-vae" / "config.json").is_file()
    assert (folder / "whisper" / "preprocessor_config.json").is_file()
    return folder


@pytest.fixture(scope="module")
def musetalk_server(
    tmp_path_factory: pytest.TempPathFactory, characters_dir: Path, tiny_weights: Path
) -> Iterator[str]:
    settings = make_settings(
        tmp_path_factory.mktemp("musetalk-data"),
        characters_dir,
        engine="musetalk",
        weights_dir=tiny_weights,
        device="cpu",
        batch_size=8,
    )
    with running_server(settings) as url:
        yield url


def test_musetalk_engine_renders_in_sync(musetalk_server: str) -> None:
    health = httpx.get(f"{musetalk_server}/healthz").json()
    assert health == {"status": "ok", "engine": "musetalk", "device": "cpu"}
    seconds = 1.6
    audio = wav_bytes(speech_mono(22050)[: int(22050 * seconds)], 22050)
    response = httpx.post(
        f"{musetalk_server}/v1/videos",
        files={"audio": ("a.wav", audio)},
        data={"character": "einstein", "fps": "15", "size": "320"},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["engine"] == "musetalk"
    assert abs(result["frames"] - seconds * 15) <= 1
    data = httpx.get(result["url"]).content
    with av.open(io.BytesIO(data), mode="r") as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (320, 320)
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    with av.open(io.BytesIO(data), mode="r") as container:
        samples = sum(f.samples for f in container.decode(audio=0))
    assert len(frames) == result["frames"]
    assert abs(samples / 44100 - seconds) < 0.06
    # Random weights make noise-like faces: the face region differs from the portrait's edges.
    assert frames[0].shape == (320, 320, 3)


@pytest.mark.slow
def test_missing_weights_report_unhealthy(tmp_path: Path, characters_dir: Path) -> None:
    settings = make_settings(
        tmp_path, characters_dir, engine="musetalk", weights_dir=tmp_path / "nothing"
    )
    with TestClient(create_app(settings)) as client:
        # Importing diffusers and transformers comes first: many seconds on a busy machine.
        deadline = time.monotonic() + 120
        while (response := client.get("/healthz")).json()["status"] == "loading":
            assert time.monotonic() < deadline, "still loading after 120 s"
            time.sleep(0.1)
        assert response.status_code == 503
        assert response.json()["error"] == "engine_unavailable"
        assert "musetalkV15" in response.json()["detail"]
        posted = client.post(
            "/v1/videos", json={"audio_url": "http://127.0.0.1/a", "portrait": "x"}
        )
        assert posted.status_code == 503
        assert posted.json()["error"] == "engine_unavailable"
