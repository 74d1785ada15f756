"""vocalizr and visualizr started by chattr itself, with their CPU engines, on free ports.

So that `chattr` on a fresh machine, with no service URLs configured, gives the whole experience.
They are stopped when chattr exits.
"""

from __future__ import annotations

import ctypes
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from chatacter_common.first_speech import FirstSpeechMarker

log = logging.getLogger(__name__)


PR_SET_PDEATHSIG = 1
# How often a starting service's /healthz is asked: a look costs ~0.2 ms of CPU on a kept
# client, and the first sentence waits for the answer.
HEALTH_POLL_S = 0.05
# Loaded here, in the parent: the child may only make plain calls between fork and exec.
_LIBC = ctypes.CDLL(None) if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when chattr dies, however it dies (Linux)."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def set_variables() -> dict[str, str]:
    """This process's environment without its empty variables, which mean unset: an empty one
    must not hide a default of the stack's."""
    return {name: value for name, value in os.environ.items() if value}


class LocalService:
    """One service as a child process: `python -m NAME --host 127.0.0.1 --port P`."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        log_dir: Path,
        defaults: dict[str, str] | None = None,
        api_key: str | None = None,
    ) -> None:
        """`env` is the stack's and always applies; `defaults` yield to the environment's.

        The service gets a fresh random bearer key each start (`api_key`): a local service is
        guarded like a public one, and only this chattr knows the key (unless one is given).
        """
        self.name = name
        self.api_key = api_key or secrets.token_urlsafe(32)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.status = "starting"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", name, "--host", "127.0.0.1", "--port", str(self.port)],
            env={
                **(defaults or {}),
                **set_variables(),
                **env,
                f"{name.upper()}_API_KEY": self.api_key,
                # Its own name in traces, not chattr's (OTEL_SERVICE_NAME would be inherited).
                "OTEL_SERVICE_NAME": name,
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in chattr's terminal is ours to pass on
            preexec_fn=die_with_parent,
        )

    def wait_healthy(self, timeout: float) -> bool:
        """Poll `/healthz` until it answers 200, the process dies, or time runs out."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while not self.check_health(client, deadline):
                time.sleep(HEALTH_POLL_S)
        return self.status == "ready"

    def check_health(self, client: httpx.Client, deadline: float) -> bool:
        """One look: whether the service has settled (ready, exited or out of time); its
        status says which."""
        if self.process.poll() is not None:
            self.status = f"exited with code {self.process.returncode} (see {self.log_path})"
            return True
        try:
            if client.get(self.url + "/healthz").status_code == 200:
                self.status = "ready"
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            waited = time.monotonic() - self.started
            self.status = f"not healthy after {waited:.0f} s (see {self.log_path})"
            return True
        return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


class LocalStack:
    """The media services chattr starts itself; their health is awaited in the background."""

    def __init__(
        self,
        *,
        characters_dir: Path,
        data_dir: Path,
        vocalizr: bool = True,
        visualizr: bool = True,
        vocalizr_url: str | None = None,
        vocalizr_key: str | None = None,
        startup_timeout_s: float = 120,
    ) -> None:
        """`vocalizr_key`: the key of a vocalizr at `vocalizr_url` that this stack did not start."""
        characters = str(characters_dir.resolve())
        self.services: list[LocalService] = []
        self.vocalizr: LocalService | None = None
        self.visualizr: LocalService | None = None
        if vocalizr:
            self.vocalizr = LocalService(
                "vocalizr",
                {
                    "VOCALIZR_CHARACTERS_DIR": characters,
                    "VOCALIZR_DATA_DIR": str(data_dir / "vocalizr"),
                    "VOCALIZR_ENGINE": "piper",
                },
                data_dir / "logs",
                defaults={
                    # visualizr renders beside it on the same cores: one ONNX thread each
                    # makes the whole reply faster (bench/fanout.py: full reply 0.83 -> 0.78
                    # of the baseline on a busy machine).
                    "VOCALIZR_PIPER_THREADS": "1",
                    # No hand-testing tab: an idle mounted Gradio app costs ~7% of a core here.
                    "VOCALIZR_UI": "false",
                    # Speech-to-text loads when someone is about to speak (the page warms it),
                    # not at start: 140 MB held only where voice is used.
                    "VOCALIZR_STT_PRELOAD": "false",
                },
            )
            self.services.append(self.vocalizr)
            vocalizr_url = self.vocalizr.url
            vocalizr_key = self.vocalizr.api_key
        # Its renders wait while a reply's first sentence is being spoken on these cores.
        self.first_speech: FirstSpeechMarker | None = None
        if visualizr:
            self.first_speech = FirstSpeechMarker(data_dir / "run" / f"first-speech-{os.getpid()}")
            env = {
                "VISUALIZR_CHARACTERS_DIR": characters,
                "VISUALIZR_DATA_DIR": str(data_dir / "visualizr"),
                "VISUALIZR_ENGINE": "warp",
                "VISUALIZR_FIRST_SPEECH_FILE": str(self.first_speech.path.resolve()),
            }
            if vocalizr_url:
                env["VISUALIZR_VOCALIZR_URL"] = vocalizr_url
            if vocalizr_key:
                env["VISUALIZR_VOCALIZR_API_KEY"] = vocalizr_key
            self.visualizr = LocalService(
                "visualizr",
                env,
                data_dir / "logs",
                defaults={
                    "VISUALIZR_UI": "false",
                    # On the same cores as vocalizr and chattr: a render under way makes way
                    # for a first sentence's speech and for the text (bench/scene.py).
                    "VISUALIZR_NICENESS": "10",
                },
            )
            self.services.append(self.visualizr)
        self._ready = threading.Event()
        self._timeout = startup_timeout_s
        threading.Thread(target=self._await_health, name="media-health", daemon=True).start()

    def _await_health(self) -> None:
        # All services at once, each settled as soon as it answers: the first sentence waits
        # for vocalizr alone. One client for every look: `httpx.get` builds a TLS context each
        # call (25 ms of CPU, most of it holding the interpreter lock while Gradio imports).
        deadline = time.monotonic() + self._timeout
        pending = list(self.services)
        with httpx.Client(timeout=1.0) as client:
            while pending:
                for service in [s for s in pending if s.check_health(client, deadline)]:
                    pending.remove(service)
                    if service.status == "ready":
                        log.info("%s ready at %s", service.name, service.url)
                    else:
                        log.warning("%s: %s", service.name, service.status)
                if pending:
                    time.sleep(HEALTH_POLL_S)
        self._ready.set()

    @property
    def settled(self) -> bool:
        """Every service is healthy or has given up."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def wait_started(self, timeout: float) -> list[str]:
        """Wait up to `timeout` for every service to settle; the names of those still starting."""
        deadline = time.monotonic() + timeout
        while True:
            starting = [s.name for s in self.services if s.status == "starting"]
            remaining = deadline - time.monotonic()
            if not starting or remaining <= 0:
                return starting
            self._ready.wait(min(0.1, remaining))

    def status_lines(self) -> list[str]:
        return [f"{s.name}: {s.status}" for s in self.services if s.status != "ready"]

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        if self.first_speech is not None:
            self.first_speech.path.unlink(missing_ok=True)
