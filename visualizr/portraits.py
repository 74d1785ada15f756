"""Portraits: the characters in `characters/` (found at start-up or on first use), and uploaded
images.

A character's portrait and declared boxes come from its folder by the contract every program
shares (chatacter_common.character_folder): the same ids, files and confinement as chattr.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from chatacter_common.character_folder import (
    CharacterError,
    PixelBox,
    character_folders,
    find_character_folder,
    load_character_media,
)
from visualizr.errors import CharacterNotFound, VisualizrError
from visualizr.media import decode_image

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Portrait:
    """A decoded portrait (BGR) with its content hash and any geometry the character declares."""

    key: str
    image: npt.NDArray[np.uint8]
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


def _box(box: PixelBox | None) -> Box | None:
    return None if box is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def load_character(folder: Path, *, max_pixels: int) -> Portrait:
    """Read one character folder: its portrait and the `portrait:` section of character.yaml."""
    media = load_character_media(folder)
    path = media.portrait_path()
    if path is None:
        looked_for = ", ".join(media.portrait.candidates())
        raise FileNotFoundError(f"no portrait in {media.id}/ (looked for {looked_for})")
    return portrait_from_bytes(
        path.read_bytes(),
        max_pixels=max_pixels,
        face_box=_box(media.portrait.face_box),
        mouth_box=_box(media.portrait.mouth_box),
    )


LOAD_ERRORS = (OSError, ValueError, CharacterError, VisualizrError)


class CharacterPortraits:
    """The characters of one folder, by folder name: all found at start-up, later ones on use."""

    def __init__(self, characters_dir: Path, *, max_pixels: int) -> None:
        self.characters_dir = characters_dir
        self.max_pixels = max_pixels
        self._portraits: dict[str, Portrait] = {}
        # Sprites by (character, label), with the file's (mtime, size) when it was read.
        self._sprites: dict[tuple[str, str], tuple[tuple[int, int], Portrait]] = {}
        self._lock = threading.Lock()

    def discover(self) -> None:
        """Load every `<id>/` folder with a portrait; a broken folder is logged and skipped."""
        if not self.characters_dir.is_dir():
            log.warning("characters folder %s not found yet", self.characters_dir)
            return
        for folder in character_folders(self.characters_dir):
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

        The id must be a character id naming an entry of the characters folder itself, so no
        path from a request reaches the filesystem.
        """
        try:
            return self.get(character)
        except CharacterNotFound:
            folder = find_character_folder(self.characters_dir, character)
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

    def sprite(self, character: str, label: str) -> Portrait | None:
        """The character's sprite for an emotion label (`expressions/<label>.png`...), or None
        when it has none (blocking: reads the folder). A sprite that cannot be decoded raises
        VisualizrError; the caller falls back to the portrait."""
        folder = find_character_folder(self.characters_dir, character)
        if folder is None:
            return None
        try:
            path = load_character_media(folder).expression_path(label)
            if path is None:
                return None
            stat = path.stat()
        except (CharacterError, OSError):
            return None
        version = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._sprites.get((character, label))
            base = self._portraits.get(character)
        if cached is not None and cached[0] == version:
            return cached[1]
        sprite = portrait_from_bytes(path.read_bytes(), max_pixels=self.max_pixels)
        if base is not None and base.image.shape == sprite.image.shape:
            # A sprite drawn on the portrait's canvas: the portrait's declared face fits it too.
            sprite = portrait_from_bytes(
                path.read_bytes(),
                max_pixels=self.max_pixels,
                face_box=base.face_box,
                mouth_box=base.mouth_box,
            )
        with self._lock:
            self._sprites[(character, label)] = (version, sprite)
        return sprite
