"""Portraits: the characters in `characters/` (found at start-up or on first use), and uploaded
images."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from visualizr.errors import CharacterNotFound, VisualizrError
from visualizr.media import decode_image

log = logging.getLogger(__name__)

# A character id as a request may name it; anything else never reaches the filesystem.
CHARACTER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
PORTRAIT_NAMES = ("portrait.png", "portrait.jpg", "portrait.jpeg", "portrait.webp")
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Portrait:
    """A decoded portrait (BGR) with its content hash and any geometry the character declares."""

    key: str
    image: np.ndarray
    face_box: Box | None = None
    mouth_box: Box | None = None


def portrait_from_bytes(
    data: bytes, *, max_pixels: int, face_box: Box | None = None, mouth_box: Box | None = None
) -> Portrait:
    """Decode an image; its key hashes the bytes and declared boxes, so caches survive restarts.

    The boxes are part of the key: the same picture with other declared geometry (two
    characters, or an edited character.yaml) must not reuse the first one's cached geometry.
    """
    image = decode_image(data, max_pixels=max_pixels)
    digest = hashlib.sha256(data)
    if face_box is not None or mouth_box is not None:
        digest.update(repr((face_box, mouth_box)).encode())
    key = digest.hexdigest()[:32]
    return Portrait(key=key, image=image, face_box=face_box, mouth_box=mouth_box)


def _box(value: object, field: str) -> Box | None:
    if value is None:
        return None
    if (
        not isinstance(value, list | tuple)
        or len(value) != 4
        or not all(isinstance(v, int | float) for v in value)
    ):
        raise ValueError(f"portrait.{field} must be [x, y, w, h] in pixels, got {value!r}")
    x, y, w, h = (float(v) for v in value)
    if w <= 0 or h <= 0:
        raise ValueError(f"portrait.{field} needs a positive width and height, got {value!r}")
    return (x, y, w, h)


def load_character(folder: Path, *, max_pixels: int) -> Portrait:
    """Read one character folder: its portrait and the `portrait:` section of character.yaml."""
    section: dict[str, object] = {}
    config_file = folder / "character.yaml"
    if config_file.exists():
        config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        if not isinstance(config, dict):
            raise ValueError("character.yaml is not a mapping")
        raw = config.get("portrait") or {}
        if not isinstance(raw, dict):
            raise ValueError("character.yaml: `portrait` must be a mapping")
        section = raw
    names = [str(section["file"])] if section.get("file") else list(PORTRAIT_NAMES)
    for name in names:
        path = folder / name
        if path.is_file() and path.resolve().is_relative_to(folder.resolve()):
            return portrait_from_bytes(
                path.read_bytes(),
                max_pixels=max_pixels,
                face_box=_box(section.get("face_box"), "face_box"),
                mouth_box=_box(section.get("mouth_box"), "mouth_box"),
            )
    raise FileNotFoundError(f"no portrait in {folder} (looked for {', '.join(names)})")


LOAD_ERRORS = (OSError, ValueError, yaml.YAMLError, VisualizrError)


class CharacterPortraits:
    """The characters of one folder, by folder name: all found at start-up, later ones on use."""

    def __init__(self, characters_dir: Path, *, max_pixels: int) -> None:
        self.characters_dir = characters_dir
        self.max_pixels = max_pixels
        self._portraits: dict[str, Portrait] = {}
        self._lock = threading.Lock()

    def discover(self) -> None:
        """Load every `<id>/` folder with a portrait; a broken folder is logged and skipped."""
        if not self.characters_dir.is_dir():
            log.warning("characters folder %s not found yet", self.characters_dir)
            return
        for folder in sorted(self.characters_dir.iterdir()):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            try:
                portrait = load_character(folder, max_pixels=self.max_pixels)
            except LOAD_ERRORS as error:
                log.warning("skipping character %s: %s", folder.name, error)
                continue
            with self._lock:
                self._portraits[folder.name] = portrait
        log.info("characters with portraits: %s", ", ".join(self.ids()) or "none")

    def ids(self) -> list[str]:
        """Registered character ids, sorted."""
        with self._lock:
            return sorted(self._portraits)

    def get(self, character: str) -> Portrait:
        """The portrait of a registered character, or CharacterNotFound listing the known ones."""
        with self._lock:
            portrait = self._portraits.get(character)
        if portrait is None:
            known = ", ".join(self.ids()) or "none"
            raise CharacterNotFound(f"no character {character[:80]!r}; known: {known}")
        return portrait

    def find(self, character: str) -> Portrait:
        """`get`, or else load `<characters_dir>/<character>/` if it was added since (blocking).

        The id must match `CHARACTER_ID` and name an entry of the characters folder itself, so
        no path from a request reaches the filesystem.
        """
        try:
            return self.get(character)
        except CharacterNotFound:
            folder = self._folder(character)
            if folder is None:
                raise
        try:
            portrait = load_character(folder, max_pixels=self.max_pixels)
        except LOAD_ERRORS as error:
            log.warning("cannot use the new character %s: %s", character, error)
            raise CharacterNotFound(
                f"character {character!r} has no usable portrait ({error}); add a "
                "portrait.png/.jpg/.webp to its folder or upload a `portrait` image"
            ) from None
        with self._lock:
            # Two first requests may both load it; the portraits are equal, keep the first.
            portrait = self._portraits.setdefault(character, portrait)
        log.info("registered character %s added after start-up", character)
        return portrait

    def _folder(self, character: str) -> Path | None:
        if not CHARACTER_ID.fullmatch(character):
            return None
        try:
            with os.scandir(self.characters_dir) as entries:
                listed = any(entry.name == character and entry.is_dir() for entry in entries)
        except OSError:
            return None
        return self.characters_dir / character if listed else None
