"""The joined-media store: the folder of whole replies chattr serves at `/media/<name>`.

It owns the folder's names and their retention. The names are chattr's own, never a caller's
path: a joined reply is `<32 hex>.wav` or `<32 hex>.mp4`; a reply video being joined leaves
`.<32 hex>-<n>.mp4` (one sentence's piece) and `.<32 hex>.mp4.part` (the unfinished file)
beside them. Nothing else in the folder is touched.
"""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path

from chatacter_common.service.retention import purge_expired, purge_period_s, purge_periodically

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
    """One folder of joined replies: names them, writes them, finds them, deletes them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def under(cls, data_dir: Path) -> MediaStore:
        """The store of a chattr whose data folder is `data_dir` (CHATTR_DATA_DIR)."""
        return cls(data_dir / "media")

    def create(self) -> MediaStore:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self

    @staticmethod
    def new_id() -> str:
        """A fresh reply id: 128 random bits, so a name is not guessed from another."""
        return secrets.token_hex(16)

    def joined_path(self, reply_id: str, extension: str) -> Path:
        return self.directory / f"{reply_id}.{extension}"

    def piece_path(self, reply_id: str, index: int) -> Path:
        """Sentence `index`'s video while the reply's whole video is being joined."""
        return self.directory / f".{reply_id}-{index}.mp4"

    def unfinished_path(self, reply_id: str) -> Path:
        """The reply's whole video while it is being written."""
        return self.directory / f".{reply_id}.mp4.part"

    def publish(self, data: bytes, extension: str) -> str:
        """Store a joined reply; returns its name (for `/media/<name>`)."""
        name = f"{self.new_id()}.{extension}"
        (self.directory / name).write_bytes(data)
        return name

    def path(self, name: str) -> Path | None:
        """The file of a joined reply's name, or None: not one of ours, or gone."""
        if not JOINED_NAME.fullmatch(name):
            return None
        path = self.directory / name
        return path if path.is_file() else None

    @staticmethod
    def name_in_url(url: str) -> str | None:
        """The joined reply a URL names (`…/media/<name>`), if it names one."""
        match = _JOINED_URL.search(url)
        return match.group(1) if match else None

    def delete(self, name: str) -> bool:
        """Delete a joined reply; False if it was already gone (past retention). OSError else."""
        if not JOINED_NAME.fullmatch(name):
            raise ValueError(f"'{name}' is not a joined reply's name")
        try:
            (self.directory / name).unlink()
        except FileNotFoundError:
            return False
        return True

    def purge(self, older_than_s: float) -> int:
        """Delete joined replies and leftover pieces past retention (the service kit's sweep, the
        same that deletes vocalizr's and visualizr's files); returns how many."""
        return purge_expired(self.directory, STORED_NAME, older_than_s, "media files")

    async def purge_periodically(self, retention_s: float) -> None:
        """Delete expired media now and then, for as long as the app runs (the kit's loop)."""
        await purge_periodically([lambda: self.purge(retention_s)], purge_period_s(retention_s))
