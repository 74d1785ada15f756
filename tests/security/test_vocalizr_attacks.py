"""Attacks on vocalizr, against the real service process over HTTP (issue 14).

Decode bombs, chunked uploads past the cap, the bearer key on every route, other callers'
voices, expiry of uploads, and error messages with server paths in them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.security.services_support import (
    SPEECH,
    PeakMemory,
    Service,
    chunked_upload,
    flac_bomb,
    service_process,
)

KEYS = ("alpha-key-0123456789", "beta-key-0123456789")
UPLOAD_LIMIT = 2_000_000
GUARDED = ["/v1/voices", "/metrics", "/docs", "/openapi.json", "/ui", "/ui/", "/redoc"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vocalizr-attacks")
    characters = root / "characters"
    characters.mkdir()
    (characters / "ada").mkdir()
    (characters / "ada" / "voice.wav").write_bytes(SPEECH.read_bytes())
    if os.geteuid() != 0:  # an unreadable clip: its error names the file (root reads anything)
        (characters / "locked").mkdir()
        locked = characters / "locked" / "voice.wav"
        locked.write_bytes(SPEECH.read_bytes())
        locked.chmod(0)
    return root


def settings_env(workdir: Path, **extra: str) -> dict[str, str]:
    return {
        "VOCALIZR_ENGINE": "piper",
        "VOCALIZR_PIPER_THREADS": "1",
        "VOCALIZR_UI": "false",
        "VOCALIZR_CHARACTERS_DIR": str(workdir / "characters"),
        "VOCALIZR_DATA_DIR": str(workdir / "data"),
        "VOCALIZR_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        **extra,
    }


@pytest.fixture(scope="module")
def vocalizr(workdir: Path) -> Iterator[Service]:
    with service_process(
        "vocalizr", settings_env(workdir, VOCALIZR_API_KEY=",".join(KEYS)), workdir
    ) as service:
        yield service


def upload(client: httpx.Client, data: bytes, name: str = "clip.flac") -> httpx.Response:
    return client.post("/v1/voices", files={"file": (name, data, "application/octet-stream")})


@pytest.mark.parametrize("lie", [False, True], ids=["honest-header", "length-unknown"])
def test_flac_bomb_is_refused_without_memory_or_time(vocalizr: Service, lie: bool) -> None:
    bomb = flac_bomb(lie_about_length=lie)
    assert len(bomb) < 240_000
    with vocalizr.client(KEYS[0]) as http, PeakMemory(vocalizr.process) as memory:
        started = time.monotonic()
        reply = upload(http, bomb)
        elapsed = time.monotonic() - started
    assert reply.status_code == 422, reply.text
    body = reply.json()
    assert body["error"] == "bad_reference"
    assert "30 s" in body["detail"] and "trim" in body["detail"]
    print(
        f"flac bomb ({'lying' if lie else 'honest'}): +{memory.growth_mb:.1f} MB, {elapsed:.3f} s"
    )
    assert memory.growth_mb < 100, f"vocalizr grew {memory.growth_mb:.0f} MB"
    assert elapsed < 3.0, f"the worker was held {elapsed:.1f} s"  # was 9 s, before the fix


def test_chunked_gigabyte_upload_is_cut_off_at_the_cap(vocalizr: Service) -> None:
    boundary = "xyzzy"
    prefix = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    with PeakMemory(vocalizr.process) as memory:
        result = chunked_upload(
            vocalizr.url,
            "/v1/voices",
            content_type=f"multipart/form-data; boundary={boundary}",
            prefix=prefix,
            total_bytes=1 << 30,
            key=KEYS[0],
        )
    assert result.status == 413, result
    assert b'"error":"upload_too_large"' in result.body
    assert b"VOCALIZR_MAX_UPLOAD_BYTES" in result.body
    # Refused after about the cap (plus socket buffers), not after the whole gigabyte.
    assert result.sent_bytes < UPLOAD_LIMIT + 32 * (1 << 20), result.sent_bytes
    assert memory.growth_mb < 100


def test_every_route_but_health_and_file_ids_needs_the_key(vocalizr: Service) -> None:
    with vocalizr.client() as anonymous, vocalizr.client("wrong-key") as wrong:
        assert anonymous.get("/healthz").status_code == 200
        for path in GUARDED:
            for client in (anonymous, wrong):
                reply = client.get(path)
                assert reply.status_code == 401, (path, reply.text)
                assert reply.json()["error"] == "unauthorized"
                assert reply.headers["www-authenticate"] == "Bearer"
        refused = anonymous.post("/v1/speech", json={"text": "Hi.", "voice": "default"})
        assert refused.status_code == 401
        assert "Authorization: Bearer" in refused.json()["detail"]
        assert upload(anonymous, SPEECH.read_bytes()).status_code == 401
        assert (
            anonymous.post("/v1/speech/stream", json={"text": "x", "voice": "ada"}).status_code
            == 401
        )
    with vocalizr.client(KEYS[1]) as http:
        for path in ("/v1/voices", "/metrics", "/docs", "/openapi.json"):
            assert http.get(path).status_code == 200, path
        speech = http.post("/v1/speech", json={"text": "Hello there.", "voice": "ada"})
        assert speech.status_code == 200, speech.text
        url = speech.json()["url"]
    # A produced file is fetched by its unguessable id alone: browsers play these URLs from
    # chat replies and cannot send a header. Nothing lists them.
    played = httpx.get(url, timeout=30)
    assert played.status_code == 200 and played.content.startswith(b"RIFF")
    assert httpx.get(url + "?format=mp3", timeout=60).status_code == 200
    with vocalizr.client() as anonymous:
        assert anonymous.get("/files/0123456789abcdef0123456789abcdef.wav").status_code == 404
        assert anonymous.get("/files/").status_code == 401


def test_uploaded_voices_belong_to_their_uploader(vocalizr: Service) -> None:
    clip = SPEECH.read_bytes()
    with vocalizr.client(KEYS[0]) as alpha, vocalizr.client(KEYS[1]) as beta:
        made = upload(alpha, clip, "mine.wav")
        assert made.status_code == 200, made.text
        voice = made.json()["voice"]
        assert voice in {v["voice"] for v in alpha.get("/v1/voices").json()["voices"]}
        listed = {v["voice"]: v["source"] for v in beta.get("/v1/voices").json()["voices"]}
        assert voice not in listed and listed.get("ada") == "character"
        # Someone else's voice is unknown to beta: the same answer as a voice that never was.
        theirs = beta.post("/v1/speech", json={"text": "Borrowed voice.", "voice": voice})
        assert theirs.status_code == 404 and theirs.json()["error"] == "unknown_voice"
        assert voice not in theirs.json()["detail"].split("known:")[-1]
        mine = alpha.post("/v1/speech", json={"text": "My own voice.", "voice": voice})
        assert mine.status_code == 200, mine.text
        # The same clip from beta is beta's own voice, with another id.
        again = upload(beta, clip, "mine.wav")
        assert again.status_code == 200 and again.json()["voice"] != voice


@pytest.mark.slow
def test_uploaded_voices_expire_from_disk_and_registry(workdir: Path) -> None:
    folder = workdir / "expiring"
    folder.mkdir()
    (folder / "characters").mkdir()
    env = settings_env(folder, VOCALIZR_VOICE_RETENTION_S="3")
    with service_process("vocalizr", env, folder) as service, service.client() as http:
        made = upload(http, SPEECH.read_bytes(), "short-lived.wav")
        assert made.status_code == 200, made.text
        voice = made.json()["voice"]
        stored = folder / "data" / "voices"
        assert (stored / f"{voice}.wav").is_file() and (stored / f"{voice}.json").is_file()
        deadline = time.monotonic() + 30
        while voice in {v["voice"] for v in http.get("/v1/voices").json()["voices"]}:
            assert time.monotonic() < deadline, "the upload outlived its retention"
            time.sleep(0.5)
        assert not (stored / f"{voice}.wav").exists() and not (stored / f"{voice}.json").exists()
        gone = http.post("/v1/speech", json={"text": "Still here?", "voice": voice})
        assert gone.status_code == 404


BAD_REQUESTS: list[tuple[str, str, dict[str, object]]] = [
    (
        "post",
        "/v1/speech",
        {"content": b"{" * 100_000, "headers": {"content-type": "application/json"}},
    ),
    (
        "post",
        "/v1/speech",
        {
            "content": b'{"text": "\\ud800", "voice": "\\udfff"}',
            "headers": {"content-type": "application/json"},
        },
    ),
    ("post", "/v1/speech", {"json": {"text": ["not", "a", "string"], "voice": 7}}),
    ("post", "/v1/speech", {"json": {"text": "Hi.", "voice": "../../etc/passwd"}}),
    ("post", "/v1/speech", {"json": {"text": "Hi.", "voice": "locked"}}),
    (
        "post",
        "/v1/speech",
        {
            "content": b'{"text": "Hi.", "voice": "ada", "language": "\\ud800x"}',
            "headers": {"content-type": "application/json"},
        },
    ),
    ("post", "/v1/voices", {"files": {"file": ("a.wav", b"RIFF....WAVEjunk")}}),
    ("post", "/v1/voices", {"files": {"file": ("a.wav", b"")}}),
    (
        "post",
        "/v1/voices",
        {
            "content": b"--x\r\nbroken",
            "headers": {"content-type": "multipart/form-data; boundary=x"},
        },
    ),
    ("get", "/files/..%2f..%2fetc%2fpasswd", {}),
    ("get", "/files/0123456789abcdef0123456789abcdef.wav", {"params": {"format": "flac"}}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), BAD_REQUESTS)
def test_bad_input_is_a_clear_4xx_without_server_paths(
    vocalizr: Service, workdir: Path, method: str, path: str, kwargs: dict[str, object]
) -> None:
    with vocalizr.client(KEYS[0]) as http:
        reply = http.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert 400 <= reply.status_code < 500, (path, reply.status_code, reply.text)
    body = reply.json()
    assert set(body) == {"error", "detail"} and body["detail"]
    for leak in (str(workdir), "/tmp", "/proc", "/work", str(Path.home())):
        assert leak not in body["detail"], body["detail"]


async def test_chattr_sends_the_key_it_is_given(
    vocalizr: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chattr.media.clients import ServiceError, VocalizrClient
    from chattr.run.serving import make_fanout
    from chattr.settings import Settings

    # The e2e stack's key (CHATTR_VOCALIZR_API_KEY, which comes first) must not stand in.
    monkeypatch.delenv("CHATTR_VOCALIZR_API_KEY", raising=False)
    monkeypatch.setenv("VOCALIZR_API_KEY", KEYS[0])  # the service's own name works for chattr
    settings = Settings()
    assert settings.vocalizr_api_key is not None
    fanout = make_fanout(settings, vocalizr.url, None)
    client = fanout.vocalizr
    assert isinstance(client, VocalizrClient)
    try:
        spoken = await client.synthesize("With the key.", "ada")
        assert spoken.url.startswith(vocalizr.url) and spoken.duration_s > 0
    finally:
        await client.aclose()
    keyless = VocalizrClient(vocalizr.url)
    try:
        with pytest.raises(ServiceError, match="Authorization: Bearer"):
            await keyless.synthesize("Without it.", "ada")
    finally:
        await keyless.aclose()
