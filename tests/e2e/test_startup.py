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

from chattr.media.local_stack import free_port
from chattr.testing.fake_llm import FakeLLMServer

pytestmark = pytest.mark.slow


def launch(
    tmp_path: Path, characters_dir: Path, llm_url: str, *args: str
) -> tuple[subprocess.Popen[bytes], str]:
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


def wait_for_page(process: subprocess.Popen[bytes], url: str, timeout: float) -> float:
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


TORCH_LIBRARIES = ("libtorch", "libc10")


def loaded_libraries(pid: int) -> set[str]:
    """File names of the shared libraries mapped into a process."""
    with open(f"/proc/{pid}/maps") as maps:
        return {line.rsplit("/", 1)[-1].strip() for line in maps if ".so" in line}


def test_a_cold_start_answers_the_first_message_with_the_characters_knowledge(
    tmp_path: Path, characters_dir: Path, llm: FakeLLMServer
) -> None:
    """Empty data folder, local services: the first message, sent the moment the page answers,
    reaches the LLM with its character's knowledge (its vectors were computed ahead, and the
    turn waits for the knowledge model as for the chat model), not waiting on the media."""
    import psutil
    from gradio_client import Client

    process, url = launch(tmp_path, characters_dir, llm.url)
    try:
        # Generous: on a 2-core machine shared with other test runs, imports alone can take minutes.
        wait_for_page(process, url, 300)
        started = time.monotonic()
        job = Client(url, verbose=False, httpx_kwargs={"timeout": 120}).submit(
            "Tell me about the battle of Austerlitz.", "napoleon", "", True, api_name="/chat"
        )
        first_text_s, result = None, {}
        for update in job:
            result = update
            if first_text_s is None and update.get("text"):
                first_text_s = time.monotonic() - started
        seconds = time.monotonic() - started
        errors = {e["service"]: e["detail"] for e in result["errors"]}
        print(f"first text after {first_text_s} s, turn done after {seconds:.1f} s; {errors}")
        assert result["text"] and first_text_s is not None, result
        assert "knowledge" not in errors, errors
        system = "\n".join(
            str(m["content"]) for m in llm.requests[0]["messages"] if m["role"] == "system"
        )
        assert "[knowledge/campaigns.md]" in system and "Austerlitz" in system, system[-2000:]
        for service in ("vocalizr", "visualizr"):
            if service in errors and "still starting" not in errors[service]:
                raise AssertionError(f"{service} failed after start: {errors[service]}")
        # Media still starting no longer hold the turn for a minute either (the bound is loose:
        # three sentences' speech and video on a loaded 2-core machine).
        assert seconds < 300, f"the first turn took {seconds:.1f} s"

        # After a turn, chattr has not loaded torch, nor have the services with their CPU engines.
        processes = [psutil.Process(process.pid), *psutil.Process(process.pid).children(True)]
        for proc in processes:
            torch = [lib for lib in loaded_libraries(proc.pid) if lib.startswith(TORCH_LIBRARIES)]
            assert not torch, f"{' '.join(proc.cmdline())} loaded {torch}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:  # a loaded machine; never leave it running
            process.kill()
            process.wait(30)


SERVICE_IMPORTS = {
    # service: (environment, how to load its engine as the service does, modules it must not load)
    "vocalizr": (
        {"VOCALIZR_ENGINE": "piper"},
        "from vocalizr.engines import create_engine; create_engine(s).load()",
        ("torch", "TTS", "transformers"),
    ),
    "visualizr": (
        {"VISUALIZR_ENGINE": "warp"},
        "from visualizr.engines import load_engine; load_engine(s)",
        ("torch", "diffusers", "transformers"),
    ),
}


@pytest.mark.parametrize("service", sorted(SERVICE_IMPORTS))
def test_services_import_only_what_their_cpu_engine_needs(
    service: str, tmp_path: Path, characters_dir: Path
) -> None:
    env, load, forbidden = SERVICE_IMPORTS[service]
    prefix = service.upper()
    code = (
        "import sys\n"
        f"from {service}.settings import Settings\n"
        f"from {service}.api import create_app\n"
        "s = Settings()\n"
        "create_app(s)\n"
        f"{load}\n"
        f"print(sorted(m for m in {forbidden!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={
            **os.environ,
            **env,
            f"{prefix}_UI": "false",
            f"{prefix}_DATA_DIR": str(tmp_path / "data"),
            f"{prefix}_CHARACTERS_DIR": str(characters_dir),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_the_startup_bench_runs(tmp_path: Path) -> None:
    """`bench/startup.py --quick`: one text-only cold start, its ratios and its first prompt."""
    bench = Path(__file__).resolve().parents[2] / "bench" / "startup.py"
    done = subprocess.run(
        [sys.executable, str(bench), "--quick", "--keep-logs", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "x import gradio)" in done.stdout, done.stdout
    assert "first prompt held the character's knowledge in 1 of 1 runs" in done.stdout, done.stdout
    assert (tmp_path / "chattr-0.log").is_file()
