"""The only character files the page serves: copies of the portraits, in a folder of their own.

Gradio serves every file under its `allowed_paths`. Giving it the characters folder would make
each character.yaml, knowledge file and voice clip downloadable by path; giving it this folder
makes the portraits, and nothing else, reachable.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from chattr.characters.character_set import Character

log = logging.getLogger(__name__)

PORTRAIT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
PORTRAITS_FOLDER = "portraits"


def portraits_dir(data_dir: Path) -> Path:
    """Where the served copies of the portraits live: a folder of chattr's data."""
    return Path(data_dir).resolve() / PORTRAITS_FOLDER


class PortraitShelf:
    """Copies each character's (confined) portrait to `folder` as `<id><suffix>`, on demand."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def path_for(self, character: Character) -> Path | None:
        """The served copy of the character's portrait, refreshed when it changed; None if none."""
        source = character.portrait_path()  # resolved and confined to the character's folder
        if source is None:
            return None
        suffix = source.suffix.lower()
        if suffix not in PORTRAIT_SUFFIXES or not _is_image(source):
            log.warning("character '%s': portrait %s is not an image", character.id, source.name)
            return None
        copy = self.folder / f"{character.id}{suffix}"
        with self._lock:
            try:
                stat = source.stat()
                if not copy.is_file() or copy.stat().st_mtime_ns != stat.st_mtime_ns:
                    partial = copy.with_name(f".{copy.name}.partial")
                    shutil.copyfile(source, partial)
                    shutil.copystat(source, partial)
                    partial.replace(copy)
                for stale in self.folder.glob(f"{character.id}.*"):
                    if stale != copy:
                        stale.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("character '%s': cannot publish its portrait: %s", character.id, exc)
                return None
        return copy


def _is_image(path: Path) -> bool:
    """Whether Pillow recognises the file as an image (reads the header only)."""
    try:
        with Image.open(path) as image:
            return bool(image.format)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return False
