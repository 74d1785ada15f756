"""The command line both services share: `<service> [--host H] [--port P]`, then serve.

The defaults come from the service's settings (environment, `.env`), and the flags override
them; `python -m vocalizr` and the `vocalizr` console script are the same thing.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, Self, TypeVar

import uvicorn
from starlette.types import ASGIApp

from chatacter_common.logs import LogFormat, configure_logging, uvicorn_log_config
from chatacter_common.storage import StoreUnavailable


class Addressed(Protocol):
    """Settings that say where to listen (a pydantic-settings model)."""

    host: str
    port: int

    def model_copy(self, *, update: dict[str, object] | None = None, deep: bool = False) -> Self:
        """A copy with some fields replaced."""
        ...


SettingsT = TypeVar("SettingsT", bound=Addressed)


class Served(Addressed, Protocol):
    """Settings that also say how to log."""

    log_format: LogFormat
    niceness: int


ServedT = TypeVar("ServedT", bound=Served)

log = logging.getLogger(__name__)
THREADS = Path("/proc/self/task")
AUTOGROUP = Path("/proc/self/autogroup")
MOST_NICE = 19


def lower_priority(steps: int) -> int:
    """Run this process `steps` nice levels lower (at most 19), with every thread it has and
    every thread and child it starts; its new niceness.

    Linux keeps a niceness per thread, and threads started while importing (thread pools) would
    keep the old one, so each is set. And where the kernel groups processes by session
    (autogroup, on by default in desktop and many server kernels), a niceness weighs only within
    the session: a process started in a session of its own (chattr starts its services so)
    competes with the others as its session, at the session's niceness, which is set too. A
    process in a session it does not lead (a shell's) leaves the session's alone: that would
    lower the shell's other programs with it.
    """
    if steps <= 0:
        return os.getpriority(os.PRIO_PROCESS, 0)
    if not THREADS.is_dir():  # one niceness for the whole process
        return os.nice(steps)
    for thread in THREADS.iterdir():
        tid = int(thread.name)
        try:
            niceness = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(MOST_NICE, niceness + steps))
        except ProcessLookupError:  # it ended meanwhile
            pass
    if os.getsid(0) == os.getpid():
        lower_session(steps)
    return os.getpriority(os.PRIO_PROCESS, 0)


def lower_session(steps: int) -> None:
    """This session's autogroup `steps` nice levels lower, where the kernel has autogroups."""
    try:
        niceness = int(AUTOGROUP.read_text().split()[-1])  # "/autogroup-85 nice 0"
        AUTOGROUP.write_text(str(min(MOST_NICE, niceness + steps)))
    except (OSError, ValueError, IndexError) as error:  # no autogroups: nothing to lower
        log.debug("session niceness left as it is: %s", error)


def parse_address(
    settings: SettingsT, argv: list[str] | None, *, prog: str, description: str
) -> SettingsT:
    """`settings` with `--host` and `--port` from the command line, where given."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    env = prog.upper()
    parser.add_argument(
        "--host", default=settings.host, help=f"interface ({env}_HOST, default {settings.host})"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=settings.port,
        help=f"port ({env}_PORT, default {settings.port})",
    )
    args = parser.parse_args(argv)
    return settings.model_copy(update={"host": args.host, "port": args.port})


def serve(
    settings: ServedT,
    create_app: Callable[[ServedT], ASGIApp],
    argv: list[str] | None = None,
    *,
    prog: str,
    description: str,
) -> None:
    """Parse the command line, then serve the app until interrupted; a media store that does not
    work ends start-up with one line naming its setting."""
    settings = parse_address(settings, argv, prog=prog, description=description)
    configure_logging(prog, settings.log_format)
    if settings.niceness:
        log.info("running at niceness %d", lower_priority(settings.niceness))
    try:
        app = create_app(settings)
    except StoreUnavailable as error:
        raise SystemExit(f"error: {error}") from None
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=uvicorn_log_config(settings.log_format),
    )
