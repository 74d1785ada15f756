"""The `visualizr` command starts the service on the given port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serving import free_port


@pytest.mark.slow
def test_cli_serves_health(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "VISUALIZR_DATA_DIR": str(tmp_path / "data"),
        "VISUALIZR_CHARACTERS_DIR": str(tmp_path / "none"),
        "VISUALIZR_UI": "false",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "visualizr", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                if response.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, "visualizr exited"
            assert time.monotonic() < deadline, "visualizr did not start"
            time.sleep(0.3)
        assert response.json()["engine"] == "warp"
    finally:
        process.terminate()
        process.wait(timeout=20)
