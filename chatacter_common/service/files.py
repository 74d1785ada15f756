"""The store of produced files: one flat folder, names made of 128-bit random ids.

Only names the store makes are ever served or deleted: `<32 hex digits><suffix>`, the same file
in another format the service derives from it, and the `.part` a write leaves while it runs.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from chatacter_common.service.errors import FileNotFound
from chatacter_common.service.retention import purge_expired


class FileStore:
    """Produced files named by unguessable random ids, each `<id><suffix>` (e.g. `.wav`)."""

    def __init__(
        self, directory: Path, suffix: str, *, derived: tuple[str, ...] = (), what: str = "files"
    ) -> None:
        self.directory = directory
        self.suffix = suffix
        self.what = what
        self.directory.mkdir(parents=True, exist_ok=True)
        self._served = re.compile(rf"[0-9a-f]{{32}}{re.escape(suffix)}")
        endings = "|".join(re.escape(ending) for ending in (suffix, *derived))
        self._stored = re.compile(rf"[0-9a-f]{{32}}(?:{endings})(?:\.part)?")

    def new_path(self) -> tuple[str, Path]:
        """A fresh random id and where its file goes."""
        file_id = f"{secrets.token_hex(16)}{self.suffix}"
        return file_id, self.directory / file_id

    def find(self, file_id: str) -> Path | None:
        """The file of a live id, or None; a name that is not an id never reaches the disk."""
        if not self._served.fullmatch(file_id):
            return None
        path = self.directory / file_id
        return path if path.is_file() else None

    def path_of(self, file_id: str) -> Path:
        """The file of a live id, or FileNotFound (404 `not_found`) that says why not."""
        path = self.find(file_id)
        if path is not None:
            return path
        if not self._served.fullmatch(file_id):
            raise FileNotFound(f"no file {file_id!r}; ids look like <32 hex digits>{self.suffix}")
        raise FileNotFound(f"no file {file_id!r}; it may have expired")

    def purge(self, older_than_s: float) -> int:
        """Delete stored files (derived and partial ones too) older than `older_than_s`."""
        return purge_expired(self.directory, self._stored, older_than_s, self.what)
