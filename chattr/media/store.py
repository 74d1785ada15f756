"""The joined-media store: whole replies chattr serves at `/media/<name>`, in a folder or a bucket.

It owns the names and their retention. The names are chattr's own, never a caller's path: a
joined reply is `<32 hex>.wav` or `<32 hex>.mp4`; a reply video being joined leaves
`.<32 hex>-<n>.mp4` (one sentence's piece) and `.<32 hex>.mp4.part` (the unfinished file) in the
local folder. Nothing else there is touched. With a bucket store (CHATTR_MEDIA_STORE=s3://...)
the joined replies go to the bucket, and every replica serves every reply's URL.
"""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response

from chatacter_common.service.retention import purge_expired, purge_period_s, purge_periodically
from chatacter_common.storage import DiskStorage, Storage, open_storage, serve_stored

log = logging.getLogger(__name__)

_ID = r"[0-9a-f]{32}"
# A joined reply's name, as /media/<name> takes it and a reply's URL ends with it.
JOINED_NAME = re.compile(rf"{_ID}\.(?:wav|mp4)")
# What a reply video leaves while it is being joined (a crash may leave it for good).
WORKING_NAME = re.compile(rf"\.{_ID}(?:-\d+\.mp4|\.mp4\.part)")
# Every name the store writes: what retention may delete.
STORED_NAME = re.compile(rf"{JOINED_NAME.pattern}|{WORKING_NAME.pattern}")
_JOINED_URL = re.compile(rf"/media/({JOINED_NAME.pattern})$")


class MediaStore:
    """Joined replies: names them, writes them, serves them, deletes them. `directory` is the
    local working folder (and the store itself unless `storage` is a bucket)."""

    def __init__(self, directory: Path, storage: Storage | None = None) -> None:
        self.directory = directory
        self.storage = storage if storage is not None else DiskStorage(directory)

    @classmethod
    def under(cls, data_dir: Path) -> MediaStore:
        """The store on disk of a chattr whose data folder is `data_dir` (CHATTR_DATA_DIR)."""
        return cls(data_dir / "media")

    @classmethod
    def open(cls, data_dir: Path, location: str | None) -> MediaStore:
        """The store CHATTR_MEDIA_STORE names (`location`), checked now: StoreUnavailable,
        naming the setting, when a bucket cannot be used."""
        directory = data_dir / "media"
        storage = open_storage(
            location, setting="CHATTR_MEDIA_STORE", directory=directory, namespace="chattr"
        )
        return cls(directory, storage)

    @property
    def on_disk(self) -> bool:
        return isinstance(self.storage, DiskStorage)

    def create(self) -> MediaStore:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self

    @staticmethod
    def new_id() -> str:
        """A fresh reply id: 128 random bits, so a name is not guessed from another."""
        return secrets.token_hex(16)

    def joined_path(self, reply_id: str, extension: str) -> Path:
        """Where to write a joined reply before `keep` stores it."""
        return self.storage.staging_path(f"{reply_id}.{extension}")

    def keep(self, name: str) -> None:
        """Store the reply written at its `joined_path` (StorageError if the bucket fails)."""
        self.storage.put_file(name, self.storage.staging_path(name))

    def piece_path(self, reply_id: str, index: int) -> Path:
        """Sentence `index`'s video while the reply's whole video is being joined."""
        return self.directory / f".{reply_id}-{index}.mp4"

    def unfinished_path(self, reply_id: str) -> Path:
        """The reply's whole video while it is being written."""
        return self.directory / f".{reply_id}.mp4.part"

    def publish(self, data: bytes, extension: str) -> str:
        """Store a joined reply; returns its name (for `/media/<name>`). StorageError if the
        bucket fails."""
        name = f"{self.new_id()}.{extension}"
        self.storage.put(name, data)
        return name

    def path(self, name: str) -> Path | None:
        """The local file of a joined reply's name when the store is on disk, or None: not one
        of ours, gone, or in a bucket."""
        if not JOINED_NAME.fullmatch(name):
            return None
        path = self.storage.local_path(name)
        return path if path is not None and path.is_file() else None

    async def response(self, name: str, request: Request) -> Response | None:
        """A joined reply as an answer (206 for a Range), or None: not one of ours, or gone.
        StorageError when a bucket fails."""
        if not JOINED_NAME.fullmatch(name):
            return None
        return await serve_stored(self.storage, name, request)

    @staticmethod
    def name_in_url(url: str) -> str | None:
        """The joined reply a URL names (`…/media/<name>`), if it names one."""
        match = _JOINED_URL.search(url)
        return match.group(1) if match else None

    def exists(self, name: str) -> bool:
        """Whether a joined reply is still kept (not past retention, not forgotten). OSError
        (StorageError from a bucket) when the store cannot say."""
        return JOINED_NAME.fullmatch(name) is not None and self.storage.stat(name) is not None

    def delete(self, name: str) -> bool:
        """Delete a joined reply; False if it was already gone (past retention). OSError else
        (StorageError from a bucket)."""
        if not JOINED_NAME.fullmatch(name):
            raise ValueError(f"'{name}' is not a joined reply's name")
        return self.storage.delete(name)

    def purge(self, older_than_s: float) -> int:
        """Delete joined replies and leftover pieces past retention (the service kit's sweep, the
        same that deletes vocalizr's and visualizr's files; from the bucket too); returns how
        many."""
        removed = 0
        if self.directory.is_dir() or self.on_disk:
            removed = purge_expired(self.directory, STORED_NAME, older_than_s, "media files")
        if not self.on_disk:
            removed += self.storage.purge(JOINED_NAME, older_than_s, "media files")
        return removed

    async def purge_periodically(self, retention_s: float) -> None:
        """Delete expired media now and then, for as long as the app runs (the kit's loop)."""
        await purge_periodically([lambda: self.purge(retention_s)], purge_period_s(retention_s))
