"""`visualizr [--host H] [--port P]`: run the talking-head video service."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from visualizr.api import create_app
from visualizr.settings import Settings


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="visualizr", description="Talking-head video service (POST /v1/videos)."
    )
    parser.add_argument("--host", default=defaults.host, help="interface (VISUALIZR_HOST)")
    parser.add_argument("--port", type=int, default=defaults.port, help="port (VISUALIZR_PORT)")
    args = parser.parse_args(argv)
    settings = defaults.model_copy(update={"host": args.host, "port": args.port})
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
