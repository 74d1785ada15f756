"""The store of produced files: names made of 128-bit random ids, in a folder or a bucket.

Only names the store makes are ever served or deleted: `<32 hex digits><suffix>`, the same file
in another format the service derives from it, and the `.part` a write leaves while it runs.
A file is written to a local folder and then kept (`keep`): on disk that is the file itself; with
a bucket store (`*_MEDIA_STORE=s3://...`) it is uploaded, and every replica serves it from there.
Derived formats stay local: any replica derives its own copy from the stored original.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response

from chatacter_common.service.errors import FileNotFound, StoreFailed
from chatacter_common.service.retention import purge_expired
from chatacter_common.storage import (
    DiskStorage,
    ObjectMissing,
    Storage,
    StorageError,
    serve_stored,
)


class FileStore:
    """Produced files named by unguessable random ids, each `<id><suffix>` (e.g. `.wav`)."""

    def __init__(
        self,
        directory: Path,
        suffix: str,
        *,
        derived: tuple[str, ...] = (),
        what: str = "files",
        storage: Storage | None = None,
    ) -> None:
        self.directory = directory
        self.suffix = suffix
        self.what = what
        self.storage = storage if storage is not None else DiskStorage(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._served = re.compile(rf"[0-9a-f]{{32}}{re.escape(suffix)}")
        endings = "|".join(re.escape(ending) for ending in (suffix, *derived))
        self._stored = re.compile(rf"[0-9a-f]{{32}}(?:{endings})(?:\.part)?")

    @property
    def on_disk(self) -> bool:
        """Whether the files live in `directory` itself (no bucket store)."""
        return isinstance(self.storage, DiskStorage)

    def new_path(self) -> tuple[str, Path]:
        """A fresh random id and where to write its file (then `keep` it)."""
        file_id = f"{secrets.token_hex(16)}{self.suffix}"
        return file_id, self.storage.staging_path(file_id)

    def keep(self, file_id: str) -> None:
        """Store the file written at the id's path: servable from here on, by every replica.
        A bucket that fails is StoreFailed (503)."""
        try:
            self.storage.put_file(file_id, self.directory / file_id)
        except StorageError as error:
            raise StoreFailed(f"the media store failed: {error}") from None

    def find(self, file_id: str) -> Path | None:
        """A local file of a live id (fetched from a bucket store into `directory`, where
        retention deletes it), or None; a name that is not an id never reaches the store."""
        if not self._served.fullmatch(file_id):
            return None
        path = self.directory / file_id
        if path.is_file() or self.on_disk:
            return path if path.is_file() else None
        try:
            data = self.storage.get(file_id)
        except ObjectMissing:
            return None
        except StorageError as error:
            raise StoreFailed(f"the media store failed: {error}") from None
        partial = path.with_name(f"{file_id}.part")
        partial.write_bytes(data)
        partial.replace(path)
        return path

    def path_of(self, file_id: str) -> Path:
        """The file of a live id, or FileNotFound (404 `not_found`) that says why not."""
        path = self.find(file_id)
        if path is not None:
            return path
        self._check_id(file_id)
        raise FileNotFound(f"no file {file_id!r}; it may have expired")

    def _check_id(self, file_id: str) -> None:
        if not self._served.fullmatch(file_id):
            raise FileNotFound(f"no file {file_id!r}; ids look like <32 hex digits>{self.suffix}")

    async def response(self, file_id: str, request: Request, media_type: str) -> Response:
        """The file as an answer (206 for a Range), from whichever replica the request reached;
        FileNotFound, or StoreFailed when a bucket store fails."""
        self._check_id(file_id)
        try:
            answer = await serve_stored(self.storage, file_id, request, media_type)
        except StorageError as error:
            raise StoreFailed(f"the media store failed: {error}") from None
        if answer is None:
            raise FileNotFound(f"no file {file_id!r}; it may have expired")
        return answer

    def purge(self, older_than_s: float) -> int:
        """Delete stored files (derived and partial ones too) older than `older_than_s`, and the
        local copies of a bucket store's files."""
        removed = purge_expired(self.directory, self._stored, older_than_s, self.what)
        if not self.on_disk:
            removed += self.storage.purge(self._stored, older_than_s, self.what)
        return removed
