"""`vocalizr [--host H] [--port P]`: run the speech service."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from vocalizr.api import create_app
from vocalizr.settings import Settings


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, then serve until interrupted."""
    settings = Settings()
    parser = argparse.ArgumentParser(prog="vocalizr", description="Text-to-speech HTTP service.")
    parser.add_argument("--host", default=settings.host, help=f"default {settings.host}")
    parser.add_argument("--port", type=int, default=settings.port, help=f"default {settings.port}")
    args = parser.parse_args(argv)
    settings = settings.model_copy(update={"host": args.host, "port": args.port})
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
