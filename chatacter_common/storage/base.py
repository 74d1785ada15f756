"""The storage interface and its errors, shared by the disk and the S3 implementations."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class StorageError(OSError):
    """A store operation failed (unreachable, refused, broken): an I/O failure, so the handlers
    that already take OSError (the retention loop, forgetting a session) take it too."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class StoreUnavailable(StorageError):
    """The configured store does not work at start-up; the message names the setting."""


class ObjectMissing(LookupError):
    """No object of that name (never written, deleted, or past retention)."""


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix in it ('' for none)."""

    bucket: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


@dataclass(frozen=True)
class StoredObject:
    """One stored file: its name in the store, size, last write (Unix seconds) and ETag."""

    name: str
    size: int
    modified: float
    etag: str | None = None


class Storage(Protocol):
    """Flat names (no folders) to bytes. Blocking methods run in worker threads; `stream` is
    async, for serving. Failures are StorageError; a missing object is ObjectMissing or None."""

    @property
    def where(self) -> str:
        """The store, for messages: a folder, or `s3://bucket/prefix`."""
        ...

    def put(self, name: str, data: bytes) -> None:
        """Store `data` under `name`, replacing what was there."""
        ...

    def put_file(self, name: str, path: Path) -> None:
        """Move a finished local file into the store under `name` (the local file is gone)."""
        ...

    def staging_path(self, name: str) -> Path:
        """Where to write a file that `put_file` will store under `name`."""
        ...

    def get(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes `start` to `end` (exclusive; None: to the end) of an object."""
        ...

    def stat(self, name: str) -> StoredObject | None:
        """The object's size and dates, or None when there is none."""
        ...

    def delete(self, name: str) -> bool:
        """Delete an object; False when there was none."""
        ...

    def older_than(self, names: re.Pattern[str], older_than_s: float) -> list[str]:
        """The stored names that match `names` fully, last written over `older_than_s` ago."""
        ...

    def purge(self, names: re.Pattern[str], older_than_s: float, what: str) -> int:
        """Delete what `older_than` lists; returns how many."""
        ...

    def local_path(self, name: str) -> Path | None:
        """The object's own file when the store is a folder on this machine, else None."""
        ...

    def stream(self, name: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes `start` to `end` (exclusive) in chunks, as they arrive."""
        ...
