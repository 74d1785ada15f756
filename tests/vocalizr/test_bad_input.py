"""Each kind of bad input gets a 4xx JSON error that says what to do; nothing 5xx."""

from __future__ import annotations

import io

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from tests.vocalizr.support import SPEECH, Server, read_mono, serve


def assert_error(reply: httpx.Response, status: int, code: str) -> str:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["error"] == code
    assert body["detail"]
    return str(body["detail"])


def test_empty_and_blank_text(client: httpx.Client) -> None:
    for text in ("", "   \n\t", "\x00\x01"):
        reply = client.post("/v1/speech", json={"text": text, "voice": "ada"})
        assert_error(reply, 422, "empty_text")


def test_text_over_the_limit_says_the_limit(client: httpx.Client, piper_server: Server) -> None:
    limit = piper_server.settings.max_text_chars
    reply = client.post("/v1/speech", json={"text": "a" * (limit + 1), "voice": "ada"})
    detail = assert_error(reply, 422, "text_too_long")
    assert str(limit) in detail


def test_unknown_voice_lists_the_known_ones(client: httpx.Client) -> None:
    reply = client.post("/v1/speech", json={"text": "Hello.", "voice": "napolean"})
    detail = assert_error(reply, 404, "unknown_voice")
    assert "ada" in detail and "bea" in detail


def test_unsupported_language_names_the_supported_ones(client: httpx.Client) -> None:
    reply = client.post("/v1/speech", json={"text": "Bonjour.", "voice": "ada", "language": "fr"})
    detail = assert_error(reply, 422, "unsupported_language")
    assert "en" in detail


def test_malformed_requests_use_the_same_error_shape(client: httpx.Client) -> None:
    assert_error(client.post("/v1/speech", json={"text": "Hi."}), 422, "invalid_request")
    assert_error(
        client.post("/v1/speech", json={"text": "Hi.", "voice": "ada", "speed": 9}),
        422,
        "invalid_request",
    )
    assert_error(
        client.post(
            "/v1/speech", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
        "invalid_request",
    )
    assert_error(client.get("/v2/nothing"), 404, "not_found")


def test_an_unknown_priority_is_refused_naming_the_field_and_its_values(
    client: httpx.Client,
) -> None:
    for priority in ("urgent", "", 1, None):
        reply = client.post(
            "/v1/speech", json={"text": "Hi.", "voice": "ada", "priority": priority}
        )
        detail = assert_error(reply, 422, "invalid_request")
        assert detail.startswith("priority: ") and "'normal'" in detail and "'first'" in detail


def test_only_nothing_speakable(client: httpx.Client) -> None:
    reply = client.post("/v1/speech", json={"text": "…", "voice": "ada"})
    assert reply.status_code in (200, 422), reply.text  # either speaks a pause or says why


@pytest.mark.parametrize(
    "file_id",
    ["..%2F..%2Fetc%2Fpasswd", "../settings.py", "0123.wav", "%2Fetc%2Fpasswd", "a" * 32 + ".wav"],
)
def test_path_like_and_unknown_file_ids(client: httpx.Client, file_id: str) -> None:
    reply = client.get(f"/files/{file_id}")
    assert reply.status_code == 404
    assert reply.json()["error"] == "not_found"


def flac_bytes(samples: npt.NDArray[np.float32], rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="FLAC")
    return buffer.getvalue()


def upload(client: httpx.Client, data: bytes, name: str = "clip.flac") -> httpx.Response:
    return client.post("/v1/voices", files={"file": (name, data, "application/octet-stream")})


def test_uploaded_voice_speaks_at_once_and_has_a_stable_id(client: httpx.Client) -> None:
    samples, rate = read_mono(SPEECH)
    clip = flac_bytes(samples[: rate * 5], rate)
    first = upload(client, clip)
    assert first.status_code == 200, first.text
    voice = first.json()["voice"]
    assert upload(client, clip).json()["voice"] == voice
    assert voice in {v["voice"] for v in client.get("/v1/voices").json()["voices"]}
    reply = client.post("/v1/speech", json={"text": "Now I speak.", "voice": voice})
    assert reply.status_code == 200, reply.text


def test_bad_reference_clips(client: httpx.Client) -> None:
    samples, rate = read_mono(SPEECH)
    assert_error(upload(client, b"RIFF....WAVEnot really"), 422, "undecodable_audio")
    assert_error(upload(client, b""), 422, "undecodable_audio")
    silent = flac_bytes(np.zeros(rate * 5, dtype=np.float32), rate)
    assert "silent" in assert_error(upload(client, silent), 422, "bad_reference")
    short = flac_bytes(samples[:rate], rate)
    assert "3" in assert_error(upload(client, short), 422, "bad_reference")
    long = flac_bytes(np.tile(samples, 4), rate)  # 32 s
    assert "30" in assert_error(upload(client, long), 422, "bad_reference")
    assert_error(client.post("/v1/voices", data={"other": "x"}), 422, "invalid_request")


def test_oversized_uploads(piper_server: Server, client: httpx.Client) -> None:
    limit = piper_server.settings.max_upload_bytes
    # Just over the limit: counted while reading the upload.
    assert_error(upload(client, b"\0" * (limit + 1)), 413, "upload_too_large")
    # Far over it: refused from the Content-Length header alone.
    assert_error(upload(client, b"\0" * (limit + 1_000_000)), 413, "upload_too_large")


@pytest.mark.slow
def test_full_queue_answers_503_with_retry_after(characters_dir: object, tmp_path: object) -> None:
    from vocalizr.settings import Settings

    settings = Settings(
        characters_dir=characters_dir,  # type: ignore[arg-type]
        data_dir=tmp_path,  # type: ignore[arg-type]
        max_queue=1,
        ui=False,
    )
    text = "This sentence keeps the only worker busy for a little while. " * 3
    with serve(settings) as server:

        async def burst() -> list[httpx.Response]:
            import asyncio

            async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
                calls = [
                    http.post("/v1/speech", json={"text": text, "voice": "ada"}) for _ in range(4)
                ]
                return list(await asyncio.gather(*calls))

        import asyncio

        replies = asyncio.run(burst())
    statuses = sorted(reply.status_code for reply in replies)
    assert 200 in statuses and 503 in statuses, statuses
    refused = next(reply for reply in replies if reply.status_code == 503)
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"] == "queue_full"
