"""The services chattr starts itself: their settings come from chattr's environment, their
folders from chattr."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from chattr.media.local_stack import LocalStack

pytestmark = pytest.mark.slow


def test_local_services_read_the_environment_except_for_their_folders(
    tmp_path: Path, characters_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOCALIZR_MAX_TEXT_CHARS", "20")  # a setting: the environment's applies
    monkeypatch.setenv("VOCALIZR_UI", "true")  # chattr's default (no tab) yields to it
    monkeypatch.setenv("VOCALIZR_DATA_DIR", str(tmp_path / "elsewhere"))  # a folder: chattr's
    stack = LocalStack(characters_dir=characters_dir, data_dir=tmp_path / "stack", visualizr=False)
    try:
        assert stack.wait_ready(120) and stack.vocalizr is not None, stack.status_lines()
        url = stack.vocalizr.url
        # Guarded by a random key of this start, which only chattr holds.
        assert httpx.get(f"{url}/v1/voices").status_code == 401
        auth = {"Authorization": f"Bearer {stack.vocalizr.api_key}"}
        too_long = httpx.post(
            f"{url}/v1/speech", json={"text": "x" * 30, "voice": "napoleon"}, headers=auth
        )
        assert too_long.status_code == 422, too_long.text
        assert "limit is 20" in too_long.json()["detail"]
        ui = httpx.get(f"{url}/ui/", follow_redirects=True, headers=auth)
        assert ui.status_code == 200
        spoken = httpx.post(
            f"{url}/v1/speech", json={"text": "Hello there.", "voice": "napoleon"}, headers=auth
        )
        assert spoken.status_code == 200, spoken.text
    finally:
        stack.stop()
    assert list((tmp_path / "stack" / "vocalizr").rglob("*.wav"))
    assert not (tmp_path / "elsewhere").exists()
