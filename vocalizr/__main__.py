"""`vocalizr [--host H] [--port P]`: run the speech service."""

from __future__ import annotations

from chatacter_common.service import cli
from vocalizr.api import create_app
from vocalizr.settings import Settings


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, then serve until interrupted."""
    cli.serve(
        Settings(), create_app, argv, prog="vocalizr", description="Text-to-speech HTTP service."
    )


if __name__ == "__main__":
    main()
