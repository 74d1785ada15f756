"""Bad input gets a 4xx JSON `{error, detail}`, never a 500; the queue bound gives 503."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from .visualizr_testkit import (
    AudioHost,
    drawing_without_face,
    image_bytes,
    make_settings,
    running_server,
    speech_mono,
    wav_bytes,
)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]


def post_upload(
    url: str, audio: bytes, portrait: bytes | None = None, **data: str
) -> httpx.Response:
    files: dict[str, tuple[str, bytes]] = {"audio": ("a.wav", audio)}
    if portrait is not None:
        files["portrait"] = ("p.png", portrait)
    else:
        data.setdefault("character", "einstein")
    return httpx.post(f"{url}/v1/videos", files=files, data=data, timeout=60)


@pytest.fixture(scope="module")
def speech() -> bytes:
    return wav_bytes(speech_mono(16000)[:16000], 16000)


def test_audio_that_does_not_decode(server: str) -> None:
    assert_error(post_upload(server, b"RIFF....WAVEfmt garbage" * 10), 422, "undecodable_audio")


def test_silent_audio(server: str) -> None:
    assert_error(
        post_upload(server, wav_bytes(np.zeros(16000, np.float32), 16000)), 422, "silent_audio"
    )


def test_overlong_audio(server: str) -> None:
    long = np.tile(speech_mono(8000), 3)[: 8000 * 25]  # 25 s > the 20 s limit
    assert_error(post_upload(server, wav_bytes(long, 8000)), 422, "audio_too_long")


def test_image_without_face(server: str, speech: bytes) -> None:
    drawing = image_bytes(drawing_without_face(), "PNG")
    assert_error(post_upload(server, speech, drawing), 422, "no_face")


def test_huge_image(server: str, speech: bytes) -> None:
    huge = image_bytes(Image.new("RGB", (3000, 2500), (120, 90, 60)), "PNG")  # 7.5 MP > 6 MP
    assert_error(post_upload(server, speech, huge), 413, "image_too_large")


def test_image_that_does_not_decode(server: str, speech: bytes) -> None:
    assert_error(post_upload(server, speech, b"\x89PNG\r\n\x1a\nbroken"), 422, "bad_image")


def test_disallowed_audio_host(server: str) -> None:
    response = httpx.post(
        f"{server}/v1/videos",
        json={"audio_url": "http://169.254.169.254/latest/meta-data", "portrait": "einstein"},
    )
    assert_error(response, 400, "host_not_allowed")
    response = httpx.post(
        f"{server}/v1/videos", json={"audio_url": "file:///etc/passwd", "portrait": "einstein"}
    )
    assert_error(response, 400, "bad_url")


def test_audio_url_that_fails(server: str, audio_host: AudioHost) -> None:
    response = httpx.post(
        f"{server}/v1/videos",
        json={"audio_url": f"{audio_host.url}/missing.wav", "portrait": "einstein"},
    )
    assert_error(response, 422, "fetch_failed")


def test_unknown_character(server: str, speech: bytes) -> None:
    response = post_upload(server, speech, character="napolean")
    assert_error(response, 404, "unknown_character")
    assert "napoleon" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"portrait": "einstein"},
        {"audio_url": "http://127.0.0.1/a.wav", "portrait": "einstein", "fps": 0},
        {"audio_url": "http://127.0.0.1/a.wav", "portrait": "einstein", "fps": "fast"},
        {"audio_url": "http://127.0.0.1/a.wav", "portrait": "einstein", "size": 100000},
        {"audio_url": "http://127.0.0.1/a.wav", "portrait": "einstein", "size": 300},
        ["not", "an", "object"],
    ],
)
def test_invalid_json_fields(server: str, body: object) -> None:
    response = httpx.post(f"{server}/v1/videos", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()) == {"error", "detail"}


def test_missing_portrait(server: str) -> None:
    response = httpx.post(f"{server}/v1/videos", json={"audio_url": "http://127.0.0.1/a.wav"})
    assert_error(response, 400, "missing_portrait")


def test_wrong_content_type(server: str) -> None:
    response = httpx.post(
        f"{server}/v1/videos", content=b"hello", headers={"content-type": "text/plain"}
    )
    assert_error(response, 415, "unsupported_media_type")
    response = httpx.post(
        f"{server}/v1/videos", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "bad_json")


@pytest.mark.parametrize(
    "file_id",
    [
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "....mp4",
        "0123456789abcdef0123456789abcdef.mp4.part",
        "0123456789abcdef0123456789abcdef.mp4",
        "ABCDEF0123456789abcdef0123456789.mp4",
    ],
)
def test_path_like_and_unknown_ids(server: str, file_id: str) -> None:
    response = httpx.get(f"{server}/files/{file_id}")
    assert_error(response, 404, "not_found")


def test_unknown_route_is_json(server: str) -> None:
    assert_error(httpx.get(f"{server}/nope"), 404, "not_found")


@pytest.fixture(scope="module")
def small_queue_server(
    tmp_path_factory: pytest.TempPathFactory, characters_dir: Path
) -> Iterator[str]:
    settings = make_settings(
        tmp_path_factory.mktemp("queue"),
        characters_dir,
        max_queue=1,
        workers=1,
        retention_s=1.0,
        default_size=512,
    )
    with running_server(settings) as url:
        yield url


async def test_queue_full_gives_503_with_retry_after(small_queue_server: str) -> None:
    audio = wav_bytes(speech_mono(16000), 16000)  # 8 s at 512 px keeps the worker busy
    async with httpx.AsyncClient(base_url=small_queue_server, timeout=120) as client:

        async def one() -> httpx.Response:
            return await client.post(
                "/v1/videos", files={"audio": ("a.wav", audio)}, data={"character": "einstein"}
            )

        responses = await asyncio.gather(one(), one(), one())
    statuses = sorted(r.status_code for r in responses)
    assert statuses[0] == 200 and statuses[-1] == 503, statuses
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.headers["retry-after"].isdigit()
    assert busy.json()["error"] == "queue_full"


def test_files_expire_after_retention(small_queue_server: str) -> None:
    audio = wav_bytes(speech_mono(16000)[:8000], 16000)
    response = httpx.post(
        f"{small_queue_server}/v1/videos",
        files={"audio": ("a.wav", audio)},
        data={"character": "einstein", "size": "128"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    url = response.json()["url"]
    assert httpx.get(url).status_code == 200
    deadline = time.monotonic() + 10
    while httpx.get(url).status_code == 200:
        assert time.monotonic() < deadline, "file outlived its retention"
        time.sleep(0.5)
    assert_error(httpx.get(url), 404, "not_found")


def test_settings_read_comma_separated_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    from visualizr.settings import Settings

    monkeypatch.setenv("VISUALIZR_ALLOWED_AUDIO_HOSTS", "vocalizr:8001, media.internal:80")
    assert Settings().audio_addresses() == {("vocalizr", 8001), ("media.internal", 80)}
    monkeypatch.setenv("VISUALIZR_ALLOWED_AUDIO_HOSTS", "vocalizr")  # a host without its port
    with pytest.raises(ValueError, match="host:port"):
        Settings()
    monkeypatch.delenv("VISUALIZR_ALLOWED_AUDIO_HOSTS")
    monkeypatch.setenv("VISUALIZR_VOCALIZR_URL", "http://tts.example:8001")
    assert Settings().audio_addresses() == {("tts.example", 8001)}
    monkeypatch.delenv("VISUALIZR_VOCALIZR_URL")
    assert ("127.0.0.1", 8001) in Settings().audio_addresses()  # vocalizr's own default
    assert io is not None
