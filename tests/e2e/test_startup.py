"""`chattr` as the README runs it: the page is up fast, local media services come and go with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from chattr.fake_llm import FakeLLMServer
from chattr.media.local_stack import free_port

pytestmark = pytest.mark.slow


def launch(
    tmp_path: Path, characters_dir: Path, llm_url: str, *args: str
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "CHATTR_LLM_BASE_URL": llm_url,
        "CHATTR_DATA_DIR": str(tmp_path / "data"),
        "CHATTR_CHARACTERS_DIR": str(characters_dir),
    }
    for name in ("CHATTR_REDIS_URL", "CHATTR_VOCALIZR_URL", "CHATTR_VISUALIZR_URL"):
        env.pop(name, None)
    log = (tmp_path / "chattr.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "chattr", "--port", str(port), *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return process, f"http://127.0.0.1:{port}"


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False  # not listening yet


def wait_for_page(process: subprocess.Popen, url: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        assert process.poll() is None, "chattr exited"
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                config = httpx.get(url + "/config", timeout=2)
                if config.status_code == 200:
                    return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the page was not up within {timeout} s")


def test_the_page_is_usable_within_15_seconds_while_models_load_behind_it(
    tmp_path: Path, characters_dir: Path, llm: FakeLLMServer
) -> None:
    process, url = launch(tmp_path, characters_dir, llm.url, "--no-media")
    try:
        seconds = wait_for_page(process, url, 60)
        print(f"page usable after {seconds:.1f} s")
        assert seconds < 15, f"page took {seconds:.1f} s"
        health = httpx.get(url + "/healthz").json()
        assert health["media"] is False and health["llm"] is True
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)


def test_chattr_starts_local_media_services_and_stops_them_on_exit(
    tmp_path: Path, characters_dir: Path, llm: FakeLLMServer
) -> None:
    import psutil

    process, url = launch(tmp_path, characters_dir, llm.url)
    try:
        wait_for_page(process, url, 60)
        children = psutil.Process(process.pid).children(recursive=True)
        names = {" ".join(c.cmdline()) for c in children}
        assert any("-m vocalizr" in n for n in names), names
        assert any("-m visualizr" in n for n in names), names
        ports = []
        for child in children:
            cmd = child.cmdline()
            if "--port" in cmd:
                ports.append(int(cmd[cmd.index("--port") + 1]))
        deadline = time.monotonic() + 120
        for port in ports:
            while not healthy(f"http://127.0.0.1:{port}/healthz"):
                assert time.monotonic() < deadline, f"service on {port} never became healthy"
                time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"left running: {[p.pid for p in alive]}"
