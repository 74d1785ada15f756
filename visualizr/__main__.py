"""`visualizr [--host H] [--port P]`: run the talking-head video service."""

from __future__ import annotations

from chatacter_common.service import cli
from visualizr.api import create_app
from visualizr.settings import Settings


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    cli.serve(
        Settings(),
        create_app,
        argv,
        prog="visualizr",
        description="Talking-head video service (POST /v1/videos).",
    )


if __name__ == "__main__":
    main()
