"""Replicas on loopback for the replica test: programs as real processes, HAProxy in front of each
program's replicas (cookie affinity for chattr, round robin for the services, health checks on
`/readyz`), all torn down by the stack that started them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.serving import free_port

HAPROXY = "/usr/sbin/haproxy"
COOKIE = "SERVERID"


@dataclass
class Replica:
    """One program's process on a port of its own; `name` is its HAProxy server (and cookie)."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    command: list[str]
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish anything."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def restart(self) -> None:
        """The same program again, on the same port and data, as an orchestrator restarts a
        killed pod; its log goes on in the same file."""
        assert self.process.poll() is not None, f"{self.name} is still running"
        self.process = _spawn(self.command, self.env, self.log, append=True)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@dataclass
class Front:
    """One HAProxy frontend and the replicas behind it."""

    name: str
    port: int
    replicas: list[Replica]
    sticky: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def replica(self, name: str) -> Replica:
        return next(r for r in self.replicas if r.name == name)

    def config(self) -> str:
        lines = [
            f"frontend {self.name}",
            f"    bind 127.0.0.1:{self.port}",
            f"    default_backend {self.name}",
            f"backend {self.name}",
            "    balance roundrobin",
            "    option httpchk GET /readyz",
            "    http-check expect status 200",
        ]
        if self.sticky:
            # Gradio's queue and session live in one process: a browser stays on its replica.
            lines.append(f"    cookie {COOKIE} insert indirect nocache")
        for replica in self.replicas:
            cookie = f" cookie {replica.name}" if self.sticky else ""
            lines.append(f"    server {replica.name} 127.0.0.1:{replica.port} check{cookie}")
        return "\n".join(lines)


def haproxy_config(fronts: list[Front]) -> str:
    """HAProxy's configuration: a dead replica is taken out by its failed checks (two, 0.5 s
    apart) or at once by `option redispatch` when a connection to it fails."""
    defaults = """\
global
    maxconn 512
defaults
    mode http
    option redispatch
    retries 3
    timeout connect 1s
    # Gradio streams events (SSE, a heartbeat every 15 s) and media replies take seconds.
    timeout client 300s
    timeout server 300s
    timeout tunnel 1h
    default-server inter 500ms fall 2 rise 1
"""
    return defaults + "\n".join(front.config() for front in fronts) + "\n"


@dataclass
class Stack:
    """Everything the test started, stopped in reverse order however the test ends."""

    folder: Path
    started: list[Replica] = field(default_factory=list)

    def start(
        self, name: str, command: list[str], env: dict[str, str], port: int | None = None
    ) -> Replica:
        port = port or free_port()
        log = self.folder / f"{name}.log"
        command = [part.replace("{port}", str(port)) for part in command]
        replica = Replica(name, port, _spawn(command, env, log), log, command, env)
        self.started.append(replica)
        return replica

    def service(self, program: str, name: str, env: dict[str, str]) -> Replica:
        command = [sys.executable, "-m", program, "--host", "127.0.0.1", "--port", "{port}"]
        return self.start(name, command, env)

    def haproxy(self, fronts: list[Front]) -> Replica:
        config = self.folder / "haproxy.cfg"
        config.write_text(haproxy_config(fronts))
        checked = subprocess.run(
            [HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        return self.start("haproxy", [HAPROXY, "-db", "-f", str(config)], {})

    def stop(self) -> None:
        for replica in reversed(self.started):
            if replica.process.poll() is None:
                replica.process.terminate()
        for replica in reversed(self.started):
            try:
                replica.process.wait(15)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait(5)


def _spawn(
    command: list[str], env: dict[str, str], log: Path, append: bool = False
) -> subprocess.Popen[bytes]:
    with log.open("ab" if append else "wb") as out:
        return subprocess.Popen(
            command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )


def wait_until(
    ready: dict[str, Callable[[], bool]], replicas: list[Replica], timeout_s: float
) -> None:
    """Poll each check until all pass; a replica that exits, or time running out, fails with its
    log's tail."""
    waiting = dict(ready)
    deadline = time.monotonic() + timeout_s
    while waiting:
        for replica in replicas:
            assert replica.process.poll() is None, f"{replica.name} exited:\n{replica.tail()}"
        for name, check in list(waiting.items()):
            with contextlib.suppress(httpx.HTTPError):
                if check():
                    del waiting[name]
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {r.name}\n{r.tail()}" for r in replicas)
            raise AssertionError(f"not ready after {timeout_s:.0f} s: {sorted(waiting)}\n{tails}")
        time.sleep(0.3)


def answers(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code == 200


def knowledge_ready(url: str) -> bool:
    """chattr's page is up and its knowledge indexed (its turns use it)."""
    health = httpx.get(f"{url}/healthz", timeout=2)
    knowledge = str(health.json().get("knowledge", "")) if health.status_code == 200 else ""
    return bool(knowledge) and not knowledge.startswith(("loading", "indexing", "not started"))
