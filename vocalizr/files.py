"""Produced audio files: random ids, strict id checks, deletion after the retention period."""

from __future__ import annotations

import logging
import re
import secrets
import time
from pathlib import Path

from vocalizr.audio import transcode_wav
from vocalizr.errors import FileNotFound

log = logging.getLogger(__name__)

# The only names ever served: 32 hex digits and a known extension. Nothing else reaches the disk.
FILE_ID = re.compile(r"[0-9a-f]{32}\.wav")
STORED_NAME = re.compile(r"[0-9a-f]{32}\.(wav|mp3|ogg)(\.part)?")


class FileStore:
    """A flat folder of produced files named by random ids."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)

    def new_path(self) -> tuple[str, Path]:
        """A fresh random id and where its file goes."""
        file_id = f"{secrets.token_hex(16)}.wav"
        return file_id, self.directory / file_id

    def path_of(self, file_id: str) -> Path:
        """The file for an id, or FileNotFound for anything that is not a live id."""
        if not FILE_ID.fullmatch(file_id):
            raise FileNotFound(f"no file {file_id!r}; ids look like <32 hex digits>.wav")
        path = self.directory / file_id
        if not path.is_file():
            raise FileNotFound(f"no file {file_id!r}; it may have expired")
        return path

    def encoded(self, file_id: str, audio_format: str) -> Path:
        """The file in another format (mp3, ogg), encoded on first request and kept."""
        source = self.path_of(file_id)
        if audio_format == "wav":
            return source
        target = source.with_suffix(f".{audio_format}")
        if not target.is_file():
            transcode_wav(source, target, audio_format)
        return target

    def purge(self, older_than_s: float) -> int:
        """Delete produced files older than the retention period; returns how many."""
        cutoff = time.time() - older_than_s
        removed = 0
        for path in self.directory.iterdir():
            try:
                if STORED_NAME.fullmatch(path.name) and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # removed by someone else meanwhile
        if removed:
            log.info("deleted %d expired audio files", removed)
        return removed
