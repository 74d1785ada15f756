"""The store of produced videos: random ids, strict validation, deletion after retention."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

FILE_ID = re.compile(r"^[0-9a-f]{32}\.mp4$")


class FileStore:
    """Produced files in one folder, named by unguessable random ids."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def new_path(self) -> Path:
        """A fresh path for a new video."""
        return self.folder / f"{secrets.token_hex(16)}.mp4"

    def find(self, file_id: str) -> Path | None:
        """The file for an id, or None; ids that don't match the strict pattern never touch disk."""
        if not FILE_ID.fullmatch(file_id):
            return None
        path = self.folder / file_id
        return path if path.is_file() else None

    def delete_older_than(self, age_s: float) -> int:
        """Delete videos (and abandoned partial files) older than `age_s`; returns how many."""
        cutoff = time.time() - age_s
        removed = 0
        for path in self.folder.iterdir():
            if not (FILE_ID.fullmatch(path.name) or path.name.endswith(".mp4.part")):
                continue
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed
