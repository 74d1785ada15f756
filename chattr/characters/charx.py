"""CHARX, Character Card V3's zip: `card.json` at the top, the card's images under `assets/`.

Also the form RisuAI writes, a JPEG with the zip appended (zip readers skip what comes first).
Every guard of a zipped folder holds (chattr/characters/zips.py). Assets are read only through
`embeded://` paths that name a member of the zip, or small `data:` URIs; a remote `http(s)://`
asset is never fetched. Each image is decoded before it is kept: a bad one is left out with a
note and the import goes on.
"""

from __future__ import annotations

import base64
import binascii
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image, UnidentifiedImageError

from chatacter_common.emotions import EMOTION_LABELS
from chattr.characters.zips import Budget, ZipRefused, checked_members, copy_member, open_zip

CARD_FILE = "card.json"
CHARX_SUFFIX = ".charx"
EMBEDDED = "embeded://"  # sic: the spec's spelling
# One image of a card: a sprite or a portrait is a few MB at most.
MAX_ASSET_BYTES = 16 * 1024 * 1024
MAX_ASSET_PIXELS = 4096 * 4096
# Formats kept as they are; any other image Pillow reads is stored as PNG.
KEPT_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}
# Names sprite packs use for the labels (SillyTavern's own packs use the labels themselves).
EMOTION_NAMES = {
    "happy": "joy",
    "happiness": "joy",
    "smile": "joy",
    "sad": "sadness",
    "angry": "anger",
    "mad": "anger",
    "surprised": "surprise",
    "shocked": "surprise",
    "scared": "fear",
    "afraid": "fear",
    "embarrassed": "embarrassment",
    "nervous": "nervousness",
    "confused": "confusion",
    "curious": "curiosity",
    "disgusted": "disgust",
    "excited": "excitement",
    "proud": "pride",
    "relieved": "relief",
    "grateful": "gratitude",
    "annoyed": "annoyance",
    "disappointed": "disappointment",
    "default": "neutral",
    "idle": "neutral",
}


class CharxError(ValueError):
    """A CHARX that cannot be read; the message says why (no server paths)."""


@dataclass(frozen=True)
class Picture:
    """A decoded and checked image: its bytes and the suffix they are stored under."""

    data: bytes
    suffix: str
    image: Image.Image  # loaded, for checks that look at the pixels (a face in a sprite)


@dataclass(frozen=True)
class CharxAssets:
    """What a CHARX adds to its card: a portrait, sprites by label, a background, and notes
    on every asset left out and why."""

    portrait: Picture | None
    expressions: dict[str, Picture]
    background: Picture | None
    notes: tuple[str, ...]


def is_charx(path: Path) -> bool:
    """Whether `path` is a CHARX: named .charx, or a zip (maybe after a JPEG) with card.json."""
    path = Path(path)
    if path.suffix.lower() == CHARX_SUFFIX:
        return True
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return CARD_FILE in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False


class CharxArchive:
    """An open CHARX: its card.json, then its assets (use as a context manager)."""

    def __init__(self, path: Path, max_card_bytes: int) -> None:
        try:
            self.archive = open_zip(path)
            self.members = {str(name): member for member, name in checked_members(self.archive)}
        except ZipRefused as error:
            raise CharxError(str(error)) from None
        self.max_card_bytes = max_card_bytes
        self.budget = Budget()

    def __enter__(self) -> CharxArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.archive.close()

    def _read(self, name: str, limit: int, what: str) -> bytes:
        out = io.BytesIO()
        try:
            copy_member(
                self.archive,
                self.members[name],
                out,
                self.budget,
                limit,
                f"{what} is larger than {limit // 2**20} MB",
            )
        except ZipRefused as error:
            raise CharxError(str(error)) from None
        return out.getvalue()

    def card_json(self) -> bytes:
        """The bytes of card.json; CharxError when the zip has none at its top."""
        if CARD_FILE not in self.members:
            raise CharxError(
                f"no {CARD_FILE} at the top of the CHARX: not a Character Card V3 archive"
            )
        return self._read(CARD_FILE, self.max_card_bytes, CARD_FILE)

    def assets(self, descriptors: Any) -> CharxAssets:
        """The card's `data.assets`, read and checked; what cannot be used becomes a note."""
        notes: list[str] = []
        portrait: tuple[bool, Picture] | None = None
        expressions: dict[str, Picture] = {}
        background: Picture | None = None
        for index, asset in enumerate(descriptors if isinstance(descriptors, list) else []):
            if not isinstance(asset, dict):
                notes.append(f"assets[{index}] is not an object; skipped")
                continue
            kind, name = str(asset.get("type", "")), str(asset.get("name", ""))
            uri = str(asset.get("uri", ""))
            where = f"{kind} asset '{name[:60]}'"
            if kind not in ("icon", "emotion", "background"):
                continue  # user icons and app-specific assets: nothing of ours shows them
            label = None
            if kind == "emotion":
                label = _emotion_label(name)
                if label is None:
                    notes.append(f"{where}: not one of the 28 emotion labels; skipped")
                    continue
            try:
                picture = self._picture(uri, where)
            except CharxError as error:
                notes.append(str(error))
                continue
            if picture is None:
                continue
            if kind == "icon":
                main = name == "main"
                if portrait is None or (main and not portrait[0]):
                    portrait = (main, picture)
            elif kind == "background":
                background = background or picture
            elif label is not None:
                expressions.setdefault(label, picture)
        return CharxAssets(
            portrait=portrait[1] if portrait else None,
            expressions=expressions,
            background=background,
            notes=tuple(notes),
        )

    def _picture(self, uri: str, where: str) -> Picture | None:
        if uri.startswith(EMBEDDED):
            name = uri[len(EMBEDDED) :]
            if str(PurePosixPath(name)) not in self.members:
                raise CharxError(f"{where}: '{name[:120]}' is not in the CHARX")
            data = self._read(str(PurePosixPath(name)), MAX_ASSET_BYTES, where)
        elif uri.startswith("data:"):
            data = _data_uri(uri, where)
        elif uri.startswith(("http://", "https://")):
            raise CharxError(f"{where}: a remote asset ({uri[:80]}); never fetched, skipped")
        else:
            return None  # `ccdefault:` names the container's own image; a CHARX has none
        return decode_picture(data, where)


def _emotion_label(name: str) -> str | None:
    cleaned = name.strip().lower()
    if cleaned in EMOTION_LABELS:
        return cleaned
    return EMOTION_NAMES.get(cleaned)


def _data_uri(uri: str, where: str) -> bytes:
    header, _, payload = uri.partition(",")
    if not header.endswith(";base64"):
        raise CharxError(f"{where}: a data URI that is not base64; skipped")
    if len(payload) > MAX_ASSET_BYTES * 4 // 3 + 4:
        raise CharxError(f"{where} is larger than {MAX_ASSET_BYTES // 2**20} MB; skipped")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise CharxError(f"{where}: its data URI is not valid base64; skipped") from None


def decode_picture(data: bytes, where: str) -> Picture:
    """Check that `data` is an image of bounded size; CharxError saying why not."""
    if len(data) > MAX_ASSET_BYTES:
        raise CharxError(f"{where} is larger than {MAX_ASSET_BYTES // 2**20} MB; skipped")
    try:
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
            if width * height > MAX_ASSET_PIXELS:
                raise CharxError(
                    f"{where} is {width} x {height} pixels; the most is 4096 x 4096; skipped"
                )
            image_format = opened.format or ""
            opened.load()
            image = opened.convert("RGBA" if opened.mode in ("RGBA", "LA", "P") else "RGB")
    except CharxError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        raise CharxError(f"{where} is not an image; skipped") from None
    suffix = KEPT_FORMATS.get(image_format)
    if suffix is None:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data, suffix = buffer.getvalue(), ".png"
    return Picture(data=data, suffix=suffix, image=image)
