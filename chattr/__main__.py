"""chattr's command line: run the app, or import a SillyTavern character card."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from pathlib import Path

from chatacter_common.logs import configure_logging
from chattr.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chattr", description="Chatacter: chat with characters in text, voice and video."
    )
    parser.add_argument("--host", help="address to listen on (CHATTR_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (CHATTR_PORT)")
    parser.add_argument(
        "--no-media", action="store_true", help="text only: do not start or call media services"
    )
    sub = parser.add_subparsers(dest="command")
    card = sub.add_parser(
        "import-card", help="import a SillyTavern character card (JSON, PNG or CHARX)"
    )
    card.add_argument("file", type=Path)
    card.add_argument("--overwrite", action="store_true", help="replace an existing character")
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging("chattr", settings.log_format)

    if args.command == "import-card":
        from chattr.characters.cards import CardError, import_card

        notes: list[str] = []
        try:
            character = import_card(
                args.file, settings.characters_dir, overwrite=args.overwrite, notes=notes
            )
        except CardError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:  # the characters folder cannot be written; no path in the message
            print(f"error: {args.file.name}: {exc.strerror or type(exc).__name__}", file=sys.stderr)
            return 2
        print(f"imported '{character.name}' as {character.folder}")
        for note in notes:
            print(f"left out: {note}")
        sprites = character.expressions()
        if sprites:
            print(f"expressions: {', '.join(sorted(sprites))}")
        background = character.background_path()
        if background is not None:
            print(f"background: {background.name}")
        from chattr.characters.lorebook import read_lorebook

        book = read_lorebook(character.folder)
        if book is not None:
            print(f"lorebook: {len(book.entries)} World Info entries in lorebook.json")
        return 0

    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    # Named before anything imports Matplotlib: here it is only read (create_app says why),
    # and the services chattr starts inherit it (MediaPipe imports pyplot in visualizr).
    os.environ.setdefault("MPLBACKEND", "agg")
    preload_knowledge_model()
    from chatacter_common.storage import StoreUnavailable
    from chattr.run.serving import serve

    try:
        serve(settings, media=not args.no_media)
    except StoreUnavailable as exc:  # names the setting and what to fix
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def preload_knowledge_model() -> None:
    """Load MiniLM beside Gradio's import, not after the page is built: ONNX Runtime builds
    the session outside the interpreter lock, so the page comes about 0.4 s later but the
    knowledge is ready before it, and a message sent the moment the page answers does not
    wait the second MiniLM takes (bench/startup.py)."""

    def load() -> None:
        # Imported here, in the thread: its imports (NumPy, ONNX Runtime) are part of the load.
        from chattr.knowledge.embeddings import load_default_embedder

        # A failure is for the knowledge's own load to meet again and report.
        with contextlib.suppress(Exception):
            load_default_embedder()
        # Gradio imports Matplotlib at the first event (create_app says why): 70 ms of the
        # first turn, spent here instead.
        with contextlib.suppress(ImportError):
            import matplotlib  # noqa: F401

    threading.Thread(target=load, name="chattr-preload", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
