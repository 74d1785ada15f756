"""The command line both services share: `<service> [--host H] [--port P]`, then serve.

The defaults come from the service's settings (environment, `.env`), and the flags override
them; `python -m vocalizr` and the `vocalizr` console script are the same thing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
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


ServedT = TypeVar("ServedT", bound=Served)


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
