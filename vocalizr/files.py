"""Produced audio files: the kit's file store, with other formats encoded on request."""

from __future__ import annotations

from pathlib import Path

from chatacter_common.service import files
from chatacter_common.storage import Storage
from vocalizr.audio import transcode_wav


class FileStore(files.FileStore):
    """WAV files named by random ids; MP3 and Ogg copies made beside them when asked for."""

    def __init__(self, directory: Path, storage: Storage | None = None) -> None:
        super().__init__(
            directory, ".wav", derived=(".mp3", ".ogg"), what="audio files", storage=storage
        )

    def encoded(self, file_id: str, audio_format: str) -> Path:
        """The file in another format (mp3, ogg), encoded on first request and kept (in this
        replica's folder: each replica encodes its own copy of a bucket store's file)."""
        source = self.path_of(file_id)
        if audio_format == "wav":
            return source
        target = source.with_suffix(f".{audio_format}")
        if not target.is_file():
            transcode_wav(source, target, audio_format)
        return target
