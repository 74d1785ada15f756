"""The store as a folder on this machine: today's single-machine behaviour."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread

from chatacter_common.storage.base import ObjectMissing, StoredObject

log = logging.getLogger(__name__)

CHUNK = 256 * 1024


class DiskStorage:
    """Objects are files in one folder, named as stored; writes go straight to the final file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def where(self) -> str:
        return str(self.directory)

    def put(self, name: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / name).write_bytes(data)

    def staging_path(self, name: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory / name

    def put_file(self, name: str, path: Path) -> None:
        target = self.directory / name
        if path != target:
            path.replace(target)

    def get(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        try:
            with (self.directory / name).open("rb") as file:
                file.seek(start)
                return file.read() if end is None else file.read(max(0, end - start))
        except FileNotFoundError:
            raise ObjectMissing(name) from None

    def stat(self, name: str) -> StoredObject | None:
        try:
            info = (self.directory / name).stat()
        except FileNotFoundError:
            return None
        return StoredObject(name, info.st_size, info.st_mtime)

    def delete(self, name: str) -> bool:
        try:
            (self.directory / name).unlink()
        except FileNotFoundError:
            return False
        return True

    def older_than(self, names: re.Pattern[str], older_than_s: float) -> list[str]:
        cutoff = time.time() - older_than_s
        found = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                try:
                    if names.fullmatch(entry.name) and entry.stat().st_mtime < cutoff:
                        found.append(entry.name)
                except FileNotFoundError:
                    continue  # removed meanwhile (a write that finished, another sweep)
        return found

    def purge(self, names: re.Pattern[str], older_than_s: float, what: str) -> int:
        removed = sum(self.delete(name) for name in self.older_than(names, older_than_s))
        if removed:
            log.info("deleted %d expired %s", removed, what)
        return removed

    def local_path(self, name: str) -> Path | None:
        return self.directory / name

    async def stream(self, name: str, start: int, end: int) -> AsyncIterator[bytes]:
        position = start
        while position < end:
            chunk = await anyio.to_thread.run_sync(
                self.get, name, position, min(end, position + CHUNK)
            )
            if not chunk:
                return
            position += len(chunk)
            yield chunk
