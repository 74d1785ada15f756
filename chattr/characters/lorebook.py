"""A character's lorebook file: `lorebook.json` beside character.yaml, read once per change.

The file is chattr's own form (`"format": "chattr-lorebook/1"`, every entry field spelled out, see
`chattr.characters.world_info.WorldEntry`), written by `chattr import-card`. A SillyTavern
world-info export or a card's `character_book` object saved as lorebook.json is read as well.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from chattr.characters.world_info import Lorebook, LorebookFormatError, parse_book

LOREBOOK_FILE = "lorebook.json"


class LorebookError(ValueError):
    """A lorebook.json that cannot be used; the message names the file, never its full path."""


def write_lorebook(folder: Path, book: Lorebook) -> Path:
    path = Path(folder) / LOREBOOK_FILE
    path.write_text(json.dumps(book.to_json(), ensure_ascii=False, indent=2) + "\n", "utf-8")
    return path


def read_lorebook(folder: Path) -> Lorebook | None:
    """The character folder's lorebook, or None when it has none; raises LorebookError."""
    path = Path(folder) / LOREBOOK_FILE
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise LorebookError(f"{LOREBOOK_FILE}: cannot read: {error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise LorebookError(
            f"{LOREBOOK_FILE}: not valid JSON (line {error.lineno}, column {error.colno}: "
            f"{error.msg})"
        ) from None
    try:
        return parse_book(data)
    except LorebookFormatError as error:
        raise LorebookError(f"{LOREBOOK_FILE}: {error}") from None


class LorebookCache:
    """Lorebooks by folder, re-read only when the file changes (size or modification time)."""

    def __init__(self) -> None:
        self._books: dict[Path, tuple[tuple[int, int] | None, Lorebook | None]] = {}
        self._lock = threading.Lock()

    def get(self, folder: Path) -> Lorebook | None:
        path = Path(folder) / LOREBOOK_FILE
        try:
            stat = path.stat()
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        with self._lock:
            cached = self._books.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        book = read_lorebook(folder) if stamp is not None else None
        with self._lock:
            self._books[path] = (stamp, book)
        return book
