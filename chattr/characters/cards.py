"""SillyTavern character cards (V1, V2, V3; JSON or PNG) read and imported as character folders."""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import re
import shutil
import struct
import tempfile
import unicodedata
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chatacter_common.character_folder import EXPRESSIONS_DIR
from chattr.characters.character_set import (
    CHARACTER_FILE,
    DEFAULT_TALKATIVENESS,
    KNOWLEDGE_DIR,
    CappedText,
    Character,
    CharacterError,
    FileFieldError,
    check_total_text,
    load_character,
    pydantic_message,
    render_macros,
)
from chattr.characters.charx import (
    CharxArchive,
    CharxAssets,
    CharxError,
    Picture,
    is_charx,
)
from chattr.characters.faces import has_face
from chattr.characters.lorebook import write_lorebook
from chattr.characters.world_info import (
    Lorebook,
    LorebookFormatError,
    WorldEntry,
    parse_book,
    parse_entry,
)

logger = logging.getLogger(__name__)

SPEC_V2 = "chara_card_v2"
SPEC_V3 = "chara_card_v3"
SPEC_V1 = "chara_card_v1"  # flat cards that predate the spec field
# Entries marked `vectorized` are also written here, retrieved by similarity like other knowledge;
# the whole lorebook goes to lorebook.json (chattr/characters/lorebook.py), applied as World Info.
LOREBOOK_FILE = f"{KNOWLEDGE_DIR}/lorebook.md"
DEFAULT_GREETING = "Hello, I'm {{char}}."
MAX_CARD_BYTES = 64 * 1024 * 1024  # cards with big lorebooks run to a few MB; refuse absurd files
# The most a card's text may take once inflated (a compressed PNG chunk) or as JSON: bounds the
# memory of a decompression bomb before it is allocated, not after.
MAX_CARD_TEXT_BYTES = 24 * 1024 * 1024
# A card's portrait is decoded whole: 4096 x 4096 RGBA is 64 MB, more would be a pixel bomb.
MAX_PORTRAIT_PIXELS = 4096 * 4096
INFLATE_STEP = 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG text chunks that carry cards: V2 in "chara", V3 in "ccv3" (preferred when both are present).
CARD_CHUNK_KEYWORDS = ("ccv3", "chara")


class CardError(FileFieldError, ValueError):
    """A card that cannot be read or imported."""


class CharacterExistsError(CardError):
    """The card's character folder already exists and overwriting was not asked for."""


# A lorebook entry as SillyTavern's World Info applies it (see chattr/characters/world_info.py).
LorebookEntry = WorldEntry


@dataclass(frozen=True)
class Card:
    """A character card's fields, whatever its version or container."""

    source: Path
    spec: str
    name: str
    nickname: str = ""
    description: str = ""
    personality: str = ""
    scenario: str = ""
    first_mes: str = ""
    mes_example: str = ""
    alternate_greetings: tuple[str, ...] = ()
    group_only_greetings: tuple[str, ...] = ()
    talkativeness: float | None = None  # data.extensions.talkativeness, when it is a number
    system_prompt: str = ""
    post_history_instructions: str = ""
    creator_notes: str = ""
    creator: str = ""
    tags: tuple[str, ...] = ()
    lorebook_name: str = ""
    lorebook: tuple[LorebookEntry, ...] = ()
    book: Lorebook | None = None  # the whole lorebook, with its book-wide settings
    image: bytes | None = None  # the PNG card's own image, as PNG bytes
    assets: CharxAssets | None = None  # a CHARX's sprites and background, and notes on them


def read_card(path: Path) -> Card:
    """Read a card from a JSON file, a PNG or a CHARX; raises CardError naming the file and the
    field."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CARD_BYTES:
            raise CardError(f"file is larger than {MAX_CARD_BYTES // 2**20} MB", path)
        raw = path.read_bytes()
    except OSError as error:
        raise CardError(f"cannot read: {error.strerror or error}", path) from None
    if raw.startswith(PNG_SIGNATURE):
        chunks = _png_chunks(raw, path)
        payload, field = _card_payload_from_png(chunks, path)
        document = _decode_embedded_json(payload, path, field)
        image: bytes | None = _portrait_png(chunks, path)
    elif is_charx(path):
        return _read_charx(path)
    else:
        document = _parse_json(raw, path)
        image = None
    return _card_from_document(document, path, image)


def import_card(
    path: Path,
    characters_dir: Path,
    *,
    overwrite: bool = False,
    notes: list[str] | None = None,
) -> Character:
    """Write the card as characters_dir/<slug-of-name>/ and return the loaded character.

    What a CHARX brings that is left out (a remote asset, a sprite with no face) is appended to
    `notes`, and logged; the character is imported without it.
    """
    card = read_card(path)
    characters_dir = Path(characters_dir)
    character_id = slugify(card.name)
    target = characters_dir / character_id
    if target.exists() and not overwrite:
        raise CharacterExistsError(
            f"a character '{character_id}' already exists; import again with overwrite "
            "(chattr import-card --overwrite) to replace it",
            Path(path),
        )
    characters_dir.mkdir(parents=True, exist_ok=True)
    # Build the folder beside the target and move it into place, so a failed import leaves
    # nothing half-written that the loader would then report as broken.
    staging = Path(tempfile.mkdtemp(prefix=f".import-{character_id}-", dir=characters_dir))
    try:
        left_out = _write_character_folder(card, staging / character_id)
        load_character(staging / character_id)  # never install a folder the loader rejects
        if target.exists():
            shutil.rmtree(target)
        (staging / character_id).rename(target)
    except CharacterError as error:
        raise CardError(
            f"imported character is invalid: {error.reason}", Path(path), error.field
        ) from None
    except ValidationError as error:
        item = error.errors()[0]
        raise CardError(
            f"imported character is invalid: {pydantic_message(item)}",
            Path(path),
            ".".join(str(part) for part in item["loc"]) or None,
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("imported %s as character '%s' in %s", path, character_id, target)
    for note in left_out:
        logger.warning("%s: %s", Path(path).name, note)
    if notes is not None:
        notes.extend(left_out)
    return load_character(target)


def slugify(name: str) -> str:
    """A character id from a name: ASCII lowercase words joined by '-', at most 64 characters."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64].rstrip("-")
    return slug or "character"


def lorebook_markdown(card: Card, *, vectorized_only: bool = False) -> str:
    """The card's enabled lorebook entries as markdown: one '## <keys>' section per entry."""
    entries = sorted(
        (
            entry
            for entry in card.lorebook
            if entry.enabled and entry.content.strip() and (entry.vectorized or not vectorized_only)
        ),
        key=lambda entry: entry.order,
    )
    if not entries:
        return ""
    sections = [f"# {card.lorebook_name or card.name + ' lorebook'}"]
    for number, entry in enumerate(entries, start=1):
        heading = ", ".join(entry.keys) or entry.name or f"entry {number}"
        sections.append(f"## {heading}\n\n{entry.content.strip()}")
    return "\n\n".join(sections) + "\n"


def _write_character_folder(card: Card, folder: Path) -> list[str]:
    """Write the folder; returns notes on the card's assets that were left out."""
    folder.mkdir(parents=True)
    character = Character(
        id=folder.name,
        folder=folder,
        name=card.name,
        description=_gallery_line(card),
        background=card.description,
        personality=card.personality,
        scenario=card.scenario,
        greeting=card.first_mes if card.first_mes.strip() else DEFAULT_GREETING,
        alternate_greetings=[text for text in card.alternate_greetings if text.strip()],
        nickname=card.nickname,
        group_only_greetings=list(card.group_only_greetings),
        example_dialogue=card.mes_example,
        system_prompt=card.system_prompt,
        post_history_instructions=card.post_history_instructions,
        tags=list(card.tags),
        creator=card.creator,
        creator_notes=card.creator_notes,
        talkativeness=DEFAULT_TALKATIVENESS if card.talkativeness is None else card.talkativeness,
    )
    (folder / CHARACTER_FILE).write_text(character.to_yaml(), encoding="utf-8")
    if card.image is not None:
        (folder / character.portrait.file).write_bytes(card.image)
    if card.book is not None and card.book.entries:
        write_lorebook(folder, card.book)
    lorebook = lorebook_markdown(card, vectorized_only=True)
    if lorebook:
        (folder / LOREBOOK_FILE).parent.mkdir()
        (folder / LOREBOOK_FILE).write_text(lorebook, encoding="utf-8")
    return _write_assets(card.assets, folder) if card.assets else []


def _write_assets(assets: CharxAssets, folder: Path) -> list[str]:
    """A CHARX's sprites (each must show a face) and background, written into the folder."""
    notes = list(assets.notes)
    for label, picture in sorted(assets.expressions.items()):
        if not has_face(picture.image):
            notes.append(
                f"emotion asset '{label}': no face found in it; skipped (the portrait shows "
                f"{label})"
            )
            continue
        sprite = folder / EXPRESSIONS_DIR / f"{label}{picture.suffix}"
        sprite.parent.mkdir(exist_ok=True)
        sprite.write_bytes(picture.data)
    if assets.background is not None:
        (folder / f"background{assets.background.suffix}").write_bytes(assets.background.data)
    return notes


def _read_charx(path: Path) -> Card:
    """A CHARX's card.json (a V3 card, nothing else) with its portrait, sprites, background."""
    try:
        with CharxArchive(path, MAX_CARD_TEXT_BYTES) as charx:
            document = _parse_json(charx.card_json(), path, "card.json")
            spec = document.get("spec") if isinstance(document, dict) else None
            if spec != SPEC_V3:
                found = f"spec {spec!r}" if spec else "no spec"
                raise CardError(
                    f"card.json is not a Character Card V3 ({found}; a CHARX holds '{SPEC_V3}')",
                    path,
                    "spec",
                )
            data = document.get("data")
            assets = charx.assets(data.get("assets") if isinstance(data, dict) else None)
    except CharxError as error:
        raise CardError(str(error), path) from None
    image = _png_bytes(assets.portrait) if assets.portrait else None
    return replace(_card_from_document(document, path, image), assets=assets)


def _png_bytes(picture: Picture) -> bytes:
    buffer = io.BytesIO()
    picture.image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _gallery_line(card: Card) -> str:
    """A one-line description for the gallery: the first sentence of the card's description."""
    for text in (card.description, card.creator_notes):
        line = " ".join(text.split())
        if line:
            # A derived line, shown as is in the gallery: resolve the macros now.
            line = render_macros(line, card.name, "you")
            sentence = re.split(r"(?<=[.!?])\s", line, maxsplit=1)[0]
            return sentence if len(sentence) <= 160 else sentence[:157].rstrip() + "..."
    return f"Imported from {card.source.name}"


# --- containers -------------------------------------------------------------------------------


def _png_chunks(raw: bytes, path: Path) -> list[tuple[bytes, bytes]]:
    """A PNG's chunks as (type, data), up to IEND; raises CardError when it is cut short."""
    chunks = []
    offset = len(PNG_SIGNATURE)
    while offset + 8 <= len(raw):
        length, kind = struct.unpack(">I4s", raw[offset : offset + 8])
        data = raw[offset + 8 : offset + 8 + length]
        if len(data) < length:
            raise CardError("PNG is truncated", path)
        chunks.append((kind, data))
        offset += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            break
    return chunks


def _png_text_chunks(chunks: list[tuple[bytes, bytes]], path: Path) -> dict[str, str]:
    """The card's text chunks (tEXt, zTXt, iTXt) keyword -> text; the first of each wins.

    Only the card keywords are decoded: other text (a comment, a bomb) is never inflated.
    """
    found: dict[str, str] = {}
    for kind, data in chunks:
        if kind not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        keyword_bytes, _, rest = data.partition(b"\0")
        keyword = keyword_bytes.decode("latin-1")
        if keyword not in CARD_CHUNK_KEYWORDS or keyword in found:
            continue
        found[keyword] = _text_chunk_value(kind, rest, path, keyword)
    return found


def _text_chunk_value(kind: bytes, rest: bytes, path: Path, keyword: str) -> str:
    name = kind.decode()
    if kind == b"tEXt":
        return rest.decode("latin-1")
    if kind == b"zTXt":
        if not rest:
            raise CardError(f"{name} chunk is truncated", path, keyword)
        return _inflate(rest[1:], path, keyword, name).decode("latin-1")
    # iTXt: compression flag, compression method, language tag \0, translated keyword \0, text
    if len(rest) < 2 or rest[2:].count(b"\0") < 2:
        raise CardError(f"{name} chunk is truncated", path, keyword)
    compressed = rest[0]
    _language, _, rest = rest[2:].partition(b"\0")
    _translated, _, text = rest.partition(b"\0")
    if compressed:
        text = _inflate(text, path, keyword, name)
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError:
        raise CardError(f"{name} chunk is not UTF-8 text", path, keyword) from None


def _inflate(data: bytes, path: Path, keyword: str, chunk: str) -> bytes:
    """zlib-inflate at most MAX_CARD_TEXT_BYTES, a step at a time; a bomb stops at the cap."""
    inflater = zlib.decompressobj()
    out = bytearray()
    pending = data
    try:
        while pending or not inflater.eof:
            piece = inflater.decompress(pending, INFLATE_STEP)
            out += piece
            if len(out) > MAX_CARD_TEXT_BYTES:
                raise CardError(
                    f"{chunk} chunk inflates to more than {MAX_CARD_TEXT_BYTES // 2**20} MB; "
                    "no card is that big",
                    path,
                    keyword,
                )
            pending = inflater.unconsumed_tail
            if not piece and not pending:
                break  # input ended before the stream did
        out += inflater.flush()
    except zlib.error as error:
        raise CardError(f"{chunk} chunk cannot be inflated: {error}", path, keyword) from None
    if not inflater.eof:
        raise CardError(f"{chunk} chunk is truncated", path, keyword)
    return bytes(out)


def _card_payload_from_png(chunks: list[tuple[bytes, bytes]], path: Path) -> tuple[str, str]:
    found = _png_text_chunks(chunks, path)
    for keyword in CARD_CHUNK_KEYWORDS:
        if keyword in found:
            return found[keyword], keyword
    raise CardError(
        "PNG has no character card: no 'chara' (V2) or 'ccv3' (V3) text chunk", path, "chara"
    )


def _decode_embedded_json(payload: str, path: Path, field: str) -> Any:
    compact = "".join(payload.split())
    try:
        # Some writers drop the '=' padding; restore it rather than reject the card.
        decoded = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise CardError("text chunk is not valid base64", path, field) from None
    return _parse_json(decoded, path, field)


def _parse_json(raw: bytes, path: Path, field: str | None = None) -> Any:
    if len(raw) > MAX_CARD_TEXT_BYTES:
        raise CardError(
            f"card text is {len(raw) // 2**20} MB; the most is {MAX_CARD_TEXT_BYTES // 2**20} MB",
            path,
            field,
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CardError("card is not UTF-8 text (expected JSON or a PNG)", path, field) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CardError(
            f"not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})", path, field
        ) from None
    except RecursionError:
        raise CardError("not a card: its JSON is nested too deeply", path, field) from None


def _portrait_png(chunks: list[tuple[bytes, bytes]], path: Path) -> bytes:
    """The card's image re-encoded as a plain PNG, without the (possibly huge) card chunks."""
    header = chunks[0][1] if chunks and chunks[0][0] == b"IHDR" else b""
    if len(header) < 8:
        raise CardError("PNG image cannot be decoded: no IHDR header", path)
    width, height = struct.unpack(">II", header[:8])
    if width * height > MAX_PORTRAIT_PIXELS:
        raise CardError(
            f"PNG image is {width} x {height} pixels; the most is "
            f"{MAX_PORTRAIT_PIXELS:,} pixels (4096 x 4096)",
            path,
        )
    # The image alone (text chunks dropped), so Pillow never inflates the card text again.
    image_only = io.BytesIO()
    image_only.write(PNG_SIGNATURE)
    for kind, data in chunks:
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        image_only.write(struct.pack(">I4s", len(data), kind) + data)
        image_only.write(struct.pack(">I", zlib.crc32(kind + data)))
    image_only.seek(0)
    try:
        with Image.open(image_only) as image:
            image.load()
            mode = "RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB"
            buffer = io.BytesIO()
            (image if image.mode == mode else image.convert(mode)).save(
                buffer, format="PNG", optimize=True
            )
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
        raise CardError(f"PNG image cannot be decoded: {error}", path) from None
    return buffer.getvalue()


# --- the card document ------------------------------------------------------------------------


class _Lenient(BaseModel):
    """Cards in the wild carry nulls for empty fields and extra keys: treat both as absent."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: item for key, item in value.items() if item is not None}
        return value


def _split_keys(value: Any) -> Any:
    # Some editors store keys as one comma-separated string.
    if isinstance(value, str):
        return [key.strip() for key in value.split(",") if key.strip()]
    return value


class _EntryModel(_Lenient):
    """The fields every shape shares, type-checked here; the rest go to world_info.parse_entry."""

    model_config = ConfigDict(extra="allow")

    keys: list[str] = []
    content: CappedText = ""
    enabled: bool = True
    name: str = ""
    comment: str = ""
    insertion_order: float = 0

    @field_validator("keys", mode="before")
    @classmethod
    def _keys_as_list(cls, value: Any) -> Any:
        return _split_keys(value)


class _BookModel(_Lenient):
    model_config = ConfigDict(extra="allow")  # scan_depth, token_budget, recursive_scanning...

    name: str = ""
    entries: list[_EntryModel] = []

    @field_validator("entries", mode="before")
    @classmethod
    def _entries_as_list(cls, value: Any) -> Any:
        # Lorebooks exported from SillyTavern's world-info editor key entries by id.
        return list(value.values()) if isinstance(value, dict) else value


class _CardDataModel(_Lenient):
    name: CappedText = Field(min_length=1)
    description: CappedText = ""
    personality: CappedText = ""
    scenario: CappedText = ""
    first_mes: CappedText = ""
    mes_example: CappedText = ""
    alternate_greetings: list[CappedText] = []
    nickname: CappedText = ""
    group_only_greetings: list[CappedText] = []
    system_prompt: CappedText = ""
    post_history_instructions: CappedText = ""
    creator_notes: CappedText = ""
    creator: CappedText = ""
    tags: list[str] = []
    character_book: _BookModel | None = None
    extensions: Any = None  # whatever a tool put there; only talkativeness is read

    @model_validator(mode="after")
    def _bounded(self) -> _CardDataModel:
        check_total_text(self)
        return self

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_as_list(cls, value: Any) -> Any:
        return _split_keys(value)


def _card_from_document(document: Any, path: Path, image: bytes | None) -> Card:
    if not isinstance(document, dict):
        raise CardError(f"expected a JSON object, found {type(document).__name__}", path)
    if "spec" in document:
        spec = document["spec"]
        if spec not in (SPEC_V2, SPEC_V3):
            raise CardError(
                f"unsupported card spec {spec!r}; expected '{SPEC_V2}' or '{SPEC_V3}'",
                path,
                "spec",
            )
        data, prefix = document.get("data"), "data"
        if not isinstance(data, dict):
            raise CardError("missing or not an object", path, "data")
    else:  # V1: the fields sit at the top level
        spec, data, prefix = SPEC_V1, document, ""
    try:
        model = _CardDataModel.model_validate(data)
    except ValidationError as error:
        item = error.errors()[0]
        where = ".".join(str(part) for part in (prefix, *item["loc"]) if part != "")
        problem = "missing required field" if item["type"] == "missing" else pydantic_message(item)
        raise CardError(problem, path, where) from None
    book = _lorebook(model.character_book, path, prefix) if model.character_book else None
    return Card(
        source=path,
        spec=str(spec),
        name=model.name,
        description=model.description,
        personality=model.personality,
        scenario=model.scenario,
        first_mes=model.first_mes,
        mes_example=model.mes_example,
        alternate_greetings=tuple(model.alternate_greetings),
        nickname=model.nickname.strip(),
        group_only_greetings=tuple(text for text in model.group_only_greetings if text.strip()),
        talkativeness=_talkativeness(
            model.extensions.get("talkativeness") if isinstance(model.extensions, dict) else None
        ),
        system_prompt=model.system_prompt,
        post_history_instructions=model.post_history_instructions,
        creator_notes=model.creator_notes,
        creator=model.creator,
        tags=tuple(model.tags),
        lorebook_name=book.name if book else "",
        lorebook=book.entries if book else (),
        book=book,
        image=image,
    )


def _talkativeness(value: Any) -> float | None:
    """A card's talkativeness: SillyTavern writes it as a string ("0.5"), others as a number;
    what is not a number from 0 to 1 is left out (the default then holds)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0.0 <= number <= 1.0 else None


def _lorebook(model: _BookModel, path: Path, prefix: str) -> Lorebook:
    """The card's character_book, every World Info field kept (chattr/characters/world_info.py)."""
    where = ".".join(part for part in (prefix, "character_book") if part)
    raw = {**model.model_dump(exclude={"entries"}), **(model.model_extra or {})}
    entries = []
    for index, entry in enumerate(model.entries):
        fields = {**entry.model_dump(exclude_unset=True), **(entry.model_extra or {})}
        try:
            entries.append(parse_entry(fields, index))
        except (TypeError, ValueError) as error:
            raise CardError(str(error), path, f"{where}.entries.{index}") from None
    try:
        book = parse_book({**raw, "entries": []})
    except LorebookFormatError as error:
        raise CardError(str(error), path, where) from None
    return Lorebook(
        entries=tuple(entries),
        name=book.name,
        scan_depth=book.scan_depth,
        token_budget=book.token_budget,
        recursive_scanning=book.recursive_scanning,
    )
