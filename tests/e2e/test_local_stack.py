"""The services chattr starts itself: their settings come from chattr's environment, their
folders from chattr."""

from __future__ import annotations

import os
import time
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


def thread_niceness(pid: int) -> set[int]:
    """The niceness of each of a process's threads (Linux keeps one per thread)."""
    return {
        os.getpriority(os.PRIO_PROCESS, int(task.name))
        for task in Path(f"/proc/{pid}/task").iterdir()
    }


def test_the_local_video_service_runs_below_speech(media_stack: LocalStack) -> None:
    # Renders on the same cores make way for a first sentence's speech (VISUALIZR_NICENESS=10,
    # chattr's default for the visualizr it starts); vocalizr stays at chattr's own niceness.
    assert media_stack.vocalizr is not None and media_stack.visualizr is not None
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert thread_niceness(media_stack.vocalizr.process.pid) == {own}
    assert thread_niceness(media_stack.visualizr.process.pid) == {min(19, own + 10)}
    # Each runs in a session of its own, which competes with chattr's as a whole (autogroups):
    # visualizr's is lowered too.
    sessions = {
        service.name: Path(f"/proc/{service.process.pid}/autogroup").read_text().split()[-1]
        for service in media_stack.services
    }
    assert sessions == {"vocalizr": "0", "visualizr": "10"}


def test_the_local_video_service_waits_while_a_first_sentence_is_spoken(
    media_stack: LocalStack,
) -> None:
    # chattr marks a first sentence being spoken (MediaFanout.speaking); a render waits for it,
    # at most VISUALIZR_FIRST_SPEECH_WAIT_S (1 s) in all, and then goes on.
    vocalizr, visualizr, marker = (
        media_stack.vocalizr,
        media_stack.visualizr,
        media_stack.first_speech,
    )
    assert vocalizr is not None and visualizr is not None and marker is not None
    spoken = httpx.post(
        f"{vocalizr.url}/v1/speech",
        json={"text": "Hello there.", "voice": "napoleon"},
        headers={"Authorization": f"Bearer {vocalizr.api_key}"},
        timeout=60,
    )
    assert spoken.status_code == 200, spoken.text

    def render() -> tuple[httpx.Response, float]:
        started = time.monotonic()
        video = httpx.post(
            f"{visualizr.url}/v1/videos",
            json={"audio_url": spoken.json()["url"], "portrait": "napoleon", "fps": 25},
            headers={"Authorization": f"Bearer {visualizr.api_key}"},
            timeout=60,
        )
        return video, time.monotonic() - started

    unmarked, _ = render()
    assert unmarked.status_code == 200, unmarked.text
    marker.begin()  # and never ended while the video is made: it waits its whole second
    try:
        marked, marked_s = render()
    finally:
        marker.end()
    assert marked.status_code == 200, marked.text
    assert marked.json()["frames"] == unmarked.json()["frames"]  # the same video, later
    assert marked_s >= 1.0  # the wait, whatever the render itself took
