"""Files expire, voice measurements are cached on disk, the CLI serves with env settings."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import soundfile as sf

from tests.serving import free_port
from tests.vocalizr.support import SPEECH, Server, read_mono, serve
from vocalizr.files import FileStore
from vocalizr.settings import Settings


def test_purge_deletes_only_expired_produced_files(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    old_id, old = store.new_path()
    assert old_id != store.new_path()[0]  # random ids
    new_id, new = store.new_path()
    for path in (old, new):
        path.write_bytes(b"RIFF")
    keep = tmp_path / "notes.txt"
    keep.write_text("not ours")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(keep, (an_hour_ago, an_hour_ago))
    assert store.purge(older_than_s=60) == 1
    assert not old.exists() and new.exists() and keep.exists()
    assert store.path_of(new_id) == new


@pytest.mark.slow
def test_retention_task_removes_served_files(characters_dir: Path, tmp_path: Path) -> None:
    settings = Settings(characters_dir=characters_dir, data_dir=tmp_path, retention_s=1, ui=False)
    with serve(settings) as server, server.client() as http:
        url = http.post("/v1/speech", json={"text": "Gone soon.", "voice": "ada"}).json()["url"]
        assert httpx.get(url).status_code == 200
        deadline = time.monotonic() + 10
        while httpx.get(url).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert httpx.get(url).status_code == 404


@pytest.mark.slow
def test_a_restart_reuses_measurements_and_keeps_uploaded_voices(piper_server: Server) -> None:
    cache = piper_server.settings.data_dir / "cache" / "voice_traits"
    records = [json.loads(path.read_text()) for path in cache.glob("*.json")]
    f0s = sorted(record["median_f0_hz"] for record in records)
    assert len(records) >= 2 and f0s[-1] > 1.4 * f0s[0]  # ada and bea, clearly apart
    samples, rate = read_mono(SPEECH)
    clip = io.BytesIO()
    sf.write(clip, samples[rate : rate * 6], rate, format="WAV")
    with piper_server.client() as http:
        uploaded = http.post("/v1/voices", files={"file": ("clip.wav", clip.getvalue())})
        voice = uploaded.json()["voice"]
    # A second service on the same data folder: characters' traits come from the disk cache,
    # and the uploaded voice is back.
    settings = piper_server.settings.model_copy(update={"ui": False})
    with serve(settings) as second, second.client() as http:
        engine = second.app.state.service.engine
        assert engine.target("bea") is not None and engine.target("ada") is not None
        assert engine.traits_cache.measurements <= 1  # at most the re-read uploaded clip
        assert voice in {known["voice"] for known in http.get("/v1/voices").json()["voices"]}
        assert http.post("/v1/speech", json={"text": "Back.", "voice": voice}).status_code == 200


@pytest.mark.slow
def test_cli_serves_with_env_settings(characters_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "VOCALIZR_CHARACTERS_DIR": str(characters_dir),
        "VOCALIZR_DATA_DIR": str(tmp_path),
        "VOCALIZR_PUBLIC_URL": "http://speech.example:9000",
        "VOCALIZR_UI": "false",
    }
    command = [sys.executable, "-m", "vocalizr", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "CLI server did not become ready"
            time.sleep(0.2)
        answer = httpx.post(f"{url}/v1/speech", json={"text": "Hi.", "voice": "ada"}, timeout=30)
        assert answer.json()["url"].startswith("http://speech.example:9000/files/")
    finally:
        process.terminate()
        process.wait(timeout=30)
