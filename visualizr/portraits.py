"""Portraits: the characters registered from `characters/` at start-up, and uploaded images."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from visualizr.errors import CharacterNotFound, VisualizrError
from visualizr.media import decode_image

log = logging.getLogger(__name__)

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
    """Decode an image; its key is the SHA-256 of the bytes, so caches survive restarts."""
    image = decode_image(data, max_pixels=max_pixels)
    key = hashlib.sha256(data).hexdigest()[:32]
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


class CharacterPortraits:
    """The characters found at start-up, by folder name."""

    def __init__(self, portraits: dict[str, Portrait]) -> None:
        self._portraits = portraits

    @classmethod
    def discover(cls, characters_dir: Path, *, max_pixels: int) -> CharacterPortraits:
        """Load every `<id>/` folder with a portrait; a broken folder is logged and skipped."""
        portraits: dict[str, Portrait] = {}
        if not characters_dir.is_dir():
            log.warning("characters folder %s not found; no characters registered", characters_dir)
            return cls(portraits)
        for folder in sorted(characters_dir.iterdir()):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            try:
                portraits[folder.name] = load_character(folder, max_pixels=max_pixels)
            except (OSError, ValueError, yaml.YAMLError, VisualizrError) as error:
                log.warning("skipping character %s: %s", folder.name, error)
        log.info("characters with portraits: %s", ", ".join(portraits) or "none")
        return cls(portraits)

    def ids(self) -> list[str]:
        """Registered character ids, sorted."""
        return sorted(self._portraits)

    def get(self, character: str) -> Portrait:
        """The portrait of a character, or CharacterNotFound listing the known ones."""
        try:
            return self._portraits[character]
        except KeyError:
            known = ", ".join(self.ids()) or "none"
            raise CharacterNotFound(f"no character {character!r}; known: {known}") from None
