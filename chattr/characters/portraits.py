"""The only character files the page serves: copies of the portraits, expression sprites and
backgrounds, in a folder of their own.

Gradio serves every file under its `allowed_paths`. Giving it the characters folder would make
each character.yaml, knowledge file and voice clip downloadable by path; giving it this folder
makes the pictures, and nothing else, reachable. Each copy is checked first: an image Pillow
recognises, no larger than a CHARX asset may be (bytes and pixels).
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from chattr.characters.character_set import Character
from chattr.characters.charx import MAX_ASSET_BYTES, MAX_ASSET_PIXELS

log = logging.getLogger(__name__)

PORTRAIT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
PORTRAITS_FOLDER = "portraits"
# Beside the portraits, under names no character id can take (ids never start with "_").
SPRITES_FOLDER = "_expressions"
BACKGROUNDS_FOLDER = "_backgrounds"
# The largest picture the page is given: a CHARX asset's limits, so an import never brings one
# that the page then refuses.
MAX_SHOWN_BYTES = MAX_ASSET_BYTES
MAX_SHOWN_PIXELS = MAX_ASSET_PIXELS


def portraits_dir(data_dir: Path) -> Path:
    """Where the served copies of the portraits live: a folder of chattr's data."""
    return Path(data_dir).resolve() / PORTRAITS_FOLDER


class PortraitShelf:
    """Copies each character's (confined) portrait to `folder` as `<id><suffix>`, its sprites as
    `_expressions/<id>/<label><suffix>` and its background as `_backgrounds/<id><suffix>`, on
    demand, each refreshed when its source changed."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def path_for(self, character: Character) -> Path | None:
        """The served copy of the character's portrait, refreshed when it changed; None if none."""
        source = character.portrait_path()  # resolved and confined to the character's folder
        return self._publish(character, source, self.folder / character.id, "portrait")

    def sprite_for(self, character: Character, label: str) -> Path | None:
        """The served copy of the character's sprite for an emotion label; None if none."""
        source = character.expression_path(label)  # None for a label that is not one of the 28
        copy = self.folder / SPRITES_FOLDER / character.id / label
        return self._publish(character, source, copy, f"expressions/{label}")

    def background_for(self, character: Character) -> Path | None:
        """The served copy of the picture shown behind the character's chat; None if none."""
        source = character.background_path()
        copy = self.folder / BACKGROUNDS_FOLDER / character.id
        return self._publish(character, source, copy, "background")

    def _publish(
        self, character: Character, source: Path | None, stem: Path, what: str
    ) -> Path | None:
        """Copy `source` to `stem` + its suffix (dropping copies with another suffix)."""
        if source is None:
            return None
        suffix = source.suffix.lower()
        problem = _unshowable(source) if suffix in PORTRAIT_SUFFIXES else "not an image"
        if problem:
            log.warning("character '%s': %s %s: %s", character.id, what, source.name, problem)
            return None
        copy = stem.with_name(stem.name + suffix)
        with self._lock:
            try:
                copy.parent.mkdir(parents=True, exist_ok=True)
                stat = source.stat()
                if not copy.is_file() or copy.stat().st_mtime_ns != stat.st_mtime_ns:
                    partial = copy.with_name(f".{copy.name}.partial")
                    shutil.copyfile(source, partial)
                    shutil.copystat(source, partial)
                    partial.replace(copy)
                for stale in copy.parent.glob(f"{stem.name}.*"):
                    if stale != copy:
                        stale.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("character '%s': cannot publish its %s: %s", character.id, what, exc)
                return None
        return copy


def _unshowable(path: Path) -> str | None:
    """Why the page may not show the file (reads its size and image header only), or None."""
    try:
        size = path.stat().st_size
        if size > MAX_SHOWN_BYTES:
            return f"{size:,} bytes; the most shown is {MAX_SHOWN_BYTES // 2**20} MB"
        with Image.open(path) as image:
            if not image.format:
                return "not an image"
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return "not an image"
    if width * height > MAX_SHOWN_PIXELS:
        return f"{width}x{height} pixels; the most shown is {MAX_SHOWN_PIXELS:,}"
    return None
