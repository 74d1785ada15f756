"""The character-folder contract that chattr, vocalizr and visualizr all read by.

A character is a folder whose name is its id::

    characters/napoleon/
        character.yaml      # chattr's `Character`; the services read `CharacterMedia` of it
        portrait.png        # `portrait.file`; unset: portrait.png, .jpg, .jpeg or .webp
        voice.wav           # `voice.reference`, the clip the voice is cloned from
        knowledge/*.md      # facts the character can be asked about (chattr's retrieval)
        expressions/joy.png # optional sprites, one per emotion label (SillyTavern's convention)
        voice/joy.wav       # optional reference clips, one per emotion label
        background.png      # optional picture behind the chat (a CHARX card's `background`)

One rule set for all three programs:

- the id is the folder's name: lowercase letters, digits, '-' and '_', at most 64, starting with
  a letter or digit (`CHARACTER_ID`), so one folder has one id on every filesystem;
- folders starting with '.' or '_' are work areas (an import in progress), never characters;
- every file a folder names is found through `confined_file`: symlinks are followed and the file
  must still be inside the folder, checked again on every use;
- the `voice` and `portrait` sections (with the hand-measured face and mouth boxes) are validated
  by the same models wherever they are read.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal, Protocol, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from chatacter_common.emotions import EMOTION_LABELS

logger = logging.getLogger(__name__)

CHARACTER_FILE = "character.yaml"
KNOWLEDGE_DIR = "knowledge"
KNOWLEDGE_SUFFIXES = (".md", ".txt")
DEFAULT_VOICE_FILE = "voice.wav"
# Looked for in this order when character.yaml names no `portrait.file`.
DEFAULT_PORTRAIT_FILES = ("portrait.png", "portrait.jpg", "portrait.jpeg", "portrait.webp")
CHARACTER_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
ID_RULE = "lowercase letters, digits, '-' and '_', at most 64, starting with a letter or digit"
WORK_AREA_PREFIXES = (".", "_")
# character.yaml is read whole and parsed in pure Python (~1 s a MB): bigger is a mistake.
MAX_CHARACTER_FILE_BYTES = 2 * 1024 * 1024
EXPRESSIONS_DIR = "expressions"
EMOTION_VOICES_DIR = "voice"
# Sprites and backgrounds: the formats every browser shows and every program here decodes.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
BACKGROUND_FILES = tuple(f"background{suffix}" for suffix in IMAGE_SUFFIXES)

PixelBox = tuple[
    Annotated[int, Field(ge=0)],
    Annotated[int, Field(ge=0)],
    Annotated[int, Field(gt=0)],
    Annotated[int, Field(gt=0)],
]


def is_character_id(name: str) -> bool:
    """Whether `name` is a valid character id (and so a folder name chattr loads)."""
    return CHARACTER_ID.fullmatch(name) is not None


def is_work_area(name: str) -> bool:
    """Folders starting with '.' or '_' are work areas (an import in progress), not characters."""
    return name.startswith(WORK_AREA_PREFIXES)


def _relative_file(value: str) -> str:
    """A file named relative to the character folder: no absolute path, drive or '..'."""
    if "\0" in value:
        raise ValueError("must not contain NUL characters")
    posix, windows = PurePosixPath(value), PureWindowsPath(value)
    if not value.strip() or posix.is_absolute() or windows.is_absolute() or windows.drive:
        raise ValueError(
            f"must be a file inside the character's folder, given relative to it; got '{value}'"
        )
    if ".." in posix.parts or ".." in windows.parts:
        raise ValueError(f"must stay inside the character's folder (no '..'); got '{value}'")
    return value


FolderFile = Annotated[str, AfterValidator(_relative_file)]


def confined_file(folder: Path, relative: str) -> Path | None:
    """`folder/relative` with symlinks resolved, or None when that lands outside `folder`."""
    root = Path(folder).resolve()
    try:
        path = (root / relative).resolve()
    except (OSError, ValueError, RuntimeError):  # a symlink loop, a NUL
        return None
    return path if path != root and path.is_relative_to(root) else None


class VoiceSettings(BaseModel):
    """How the character sounds: the reference clip to clone and how to speak."""

    model_config = ConfigDict(extra="ignore")

    reference: FolderFile = DEFAULT_VOICE_FILE  # relative to the character folder, and inside it
    language: str = "en"
    speed: float = Field(default=1.0, gt=0.25, le=4.0)
    # What of a reply is spoken (the page always shows all of it): everything but markdown,
    # everything but *actions* and (stage directions), or only "quoted" dialogue.
    speak: Literal["all", "skip_actions", "quotes_only"] = "skip_actions"

    def candidates(self) -> tuple[str, ...]:
        """The file names the clip may have, in the order they are looked for."""
        return (self.reference,)


class PortraitSettings(BaseModel):
    """The portrait the talking head animates, with optional hand-measured boxes."""

    model_config = ConfigDict(extra="ignore")

    file: FolderFile = DEFAULT_PORTRAIT_FILES[0]  # relative to the character folder, and inside
    # x, y, w, h in pixels, for portraits where automatic face detection fails (drawings)
    face_box: PixelBox | None = None
    mouth_box: PixelBox | None = None

    def candidates(self) -> tuple[str, ...]:
        """The file names the portrait may have: the one named, else the usual ones in order."""
        return (self.file,) if "file" in self.model_fields_set else DEFAULT_PORTRAIT_FILES


def find_file(character_id: str, folder: Path, names: tuple[str, ...], field: str) -> Path | None:
    """The first of `names` that is a file inside `folder` now (links followed), else None."""
    # Checked again on every use: the folder may have changed since it was loaded.
    for relative in names:
        path = confined_file(folder, relative)
        if path is None:
            logger.warning(
                "character '%s': %s '%s' points outside its folder; ignored",
                character_id,
                field,
                relative,
            )
        elif path.is_file():
            return path
    return None


def expression_file(character_id: str, folder: Path, label: str) -> Path | None:
    """The sprite `expressions/<label>.png|jpg|jpeg|webp` inside the folder, or None."""
    if label not in EMOTION_LABELS:
        return None  # never a path built from an unchecked name
    names = tuple(f"{EXPRESSIONS_DIR}/{label}{suffix}" for suffix in IMAGE_SUFFIXES)
    return find_file(character_id, folder, names, "expressions")


def expression_files(character_id: str, folder: Path) -> dict[str, Path]:
    """Every emotion label that has a sprite in the folder, with its file."""
    found = {}
    if (Path(folder) / EXPRESSIONS_DIR).is_dir():
        for label in EMOTION_LABELS:
            path = expression_file(character_id, folder, label)
            if path is not None:
                found[label] = path
    return found


def emotion_voice_file(character_id: str, folder: Path, label: str) -> Path | None:
    """The reference clip `voice/<label>.wav` inside the folder, or None."""
    if label not in EMOTION_LABELS:
        return None
    return find_file(character_id, folder, (f"{EMOTION_VOICES_DIR}/{label}.wav",), "voice")


def background_file(character_id: str, folder: Path) -> Path | None:
    """The picture shown behind the chat, `background.png|jpg|jpeg|webp`, or None."""
    return find_file(character_id, folder, BACKGROUND_FILES, "background")


class CharacterMedia(BaseModel):
    """What the media services read of a character folder: its voice and its portrait.

    chattr's `Character` holds the same `voice` and `portrait` sections with the rest of
    character.yaml; the services need neither the rest nor, for that matter, the file itself.
    """

    model_config = ConfigDict(extra="ignore")

    id: str = Field(pattern=CHARACTER_ID.pattern)  # the folder's name
    folder: Path
    name: str | None = None
    voice: VoiceSettings = Field(default_factory=VoiceSettings)
    portrait: PortraitSettings = Field(default_factory=PortraitSettings)

    @property
    def display_name(self) -> str:
        """The name character.yaml gives, else the id."""
        return self.name.strip() if self.name and self.name.strip() else self.id

    def voice_path(self) -> Path | None:
        """The reference voice clip, or None when the folder has none (or it points outside)."""
        return find_file(self.id, self.folder, self.voice.candidates(), "voice.reference")

    def portrait_path(self) -> Path | None:
        """The portrait image file, or None when the folder has none (or it points outside)."""
        return find_file(self.id, self.folder, self.portrait.candidates(), "portrait.file")

    def expression_path(self, label: str) -> Path | None:
        """The sprite for an emotion label, or None (then the portrait shows it)."""
        return expression_file(self.id, self.folder, label)

    def expressions(self) -> dict[str, Path]:
        """Every emotion label with a sprite, and its file."""
        return expression_files(self.id, self.folder)

    def background_path(self) -> Path | None:
        """The picture behind the chat, or None."""
        return background_file(self.id, self.folder)

    def emotion_voice_path(self, label: str) -> Path | None:
        """The reference clip for an emotion label (`voice/<label>.wav`), or None."""
        return emotion_voice_file(self.id, self.folder, label)

    def emotion_voices(self) -> dict[str, Path]:
        """Every emotion label with its own reference clip."""
        found = {}
        if (self.folder / EMOTION_VOICES_DIR).is_dir():
            for label in EMOTION_LABELS:
                path = self.emotion_voice_path(label)
                if path is not None:
                    found[label] = path
        return found


class FileFieldError(Exception):
    """A file that cannot be used; the message names the file and, when known, the field."""

    def __init__(self, message: str, path: Path, field: str | None = None) -> None:
        self.path = path
        self.field = field
        self.reason = message
        # The message is shown to people (the page, the CLI): the file's name, never the
        # server's folders.
        where = f"{self.shown_name}: field '{field}'" if field else self.shown_name
        super().__init__(f"{where}: {message}")

    @property
    def shown_name(self) -> str:
        return self.path.name


class CharacterError(FileFieldError):
    """A character folder that cannot be loaded."""

    @property
    def shown_name(self) -> str:
        # "napoleon/character.yaml": which character, without where the characters live.
        if self.path.name == CHARACTER_FILE:
            return f"{self.path.parent.name}/{self.path.name}"
        return self.path.name


def check_character_id(folder: Path) -> None:
    """Raise CharacterError when the folder's name is not a valid character id."""
    if not is_character_id(folder.name):
        raise CharacterError(
            f"folder name '{folder.name}' is not a valid character id ({ID_RULE})", folder, "id"
        )


def character_folders(directory: Path) -> list[Path]:
    """The folders of `directory` that may be characters, sorted; work areas left out."""
    return sorted(
        entry
        for entry in Path(directory).iterdir()
        if entry.is_dir() and not is_work_area(entry.name)
    )


def find_character_folder(directory: Path, character_id: str) -> Path | None:
    """`directory/character_id` when the id is valid and names a folder listed there; else None.

    The id must match `CHARACTER_ID` and name an entry of the directory itself, so no path from
    a request reaches the filesystem.
    """
    if not is_character_id(character_id):
        return None
    try:
        with os.scandir(directory) as entries:
            listed = any(entry.name == character_id and entry.is_dir() for entry in entries)
    except OSError:
        return None
    return Path(directory) / character_id if listed else None


def read_character_file(folder: Path, *, required: bool = True) -> dict[str, Any]:
    """The fields of `folder/character.yaml`, without `id` and `folder` (those are the folder's).

    Raises CharacterError naming the file (and line) when it cannot be read; a missing file is an
    error when `required`, no fields otherwise.
    """
    path = Path(folder) / CHARACTER_FILE
    if not required and not path.exists():
        return {}
    data = _read_yaml(path)
    for key in ("id", "folder"):
        if key in data:
            logger.warning("%s: ignoring '%s'; it comes from the folder's location", path, key)
            del data[key]
    return data


def check_files_inside(
    folder: Path, voice: VoiceSettings, portrait: PortraitSettings, path: Path
) -> None:
    """Raise CharacterError when a file the folder may use is a link out of it.

    The files may be missing (no portrait, no voice), but never lead outside the folder.
    """
    for field_name, names in (
        ("portrait.file", portrait.candidates()),
        ("voice.reference", voice.candidates()),
    ):
        for relative in names:
            if confined_file(folder, relative) is None:
                raise CharacterError(
                    f"'{relative}' leads outside the character's folder; name a file inside it",
                    path,
                    field_name,
                )


def load_character_media(folder: Path) -> CharacterMedia:
    """Read what the media services need of one character folder; character.yaml is optional.

    Raises CharacterError, as chattr's `load_character` does, for a folder that cannot be used.
    """
    folder = Path(folder)
    check_character_id(folder)
    data = read_character_file(folder, required=False)
    return validate_character(CharacterMedia, folder, data)


class _FolderModel(Protocol):
    folder: Path
    voice: VoiceSettings
    portrait: PortraitSettings


Model = TypeVar("Model", bound=BaseModel)


def validate_character(model: type[Model], folder: Path, data: Mapping[str, Any]) -> Model:
    """`character.yaml`'s data as `model` (chattr's whole character, or what the services read
    of it), with its id and folder; every file it may use confined to the folder. Raises
    CharacterError naming the file and the field."""
    path = folder / CHARACTER_FILE
    try:
        loaded = model.model_validate({**data, "id": folder.name, "folder": folder.resolve()})
    except ValidationError as error:
        raise character_error(error, path) from None
    except RecursionError:
        raise CharacterError("nested too deeply", path) from None
    files: _FolderModel = loaded  # type: ignore[assignment]  # both models have these fields
    check_files_inside(files.folder, files.voice, files.portrait, path)
    return loaded


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_CHARACTER_FILE_BYTES:
            raise CharacterError(
                f"{path.stat().st_size:,} bytes; the most a {CHARACTER_FILE} may hold is "
                f"{MAX_CHARACTER_FILE_BYTES // 2**20} MB",
                path,
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CharacterError(f"missing {CHARACTER_FILE}", path) from None
    except OSError as error:
        # strerror, not str(error): that one carries the absolute path.
        raise CharacterError(
            f"cannot read: {error.strerror or type(error).__name__}", path
        ) from None
    except UnicodeDecodeError as error:
        raise CharacterError(f"cannot read: {error}", path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise CharacterError(f"invalid YAML at {line}{error.problem}", path) from None
    except yaml.YAMLError as error:
        raise CharacterError(f"invalid YAML: {error}", path) from None
    except RecursionError:
        raise CharacterError("invalid YAML: nested too deeply", path) from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise CharacterError(f"expected a mapping of fields, found {kind}", path)
    return data


def unknown_keys(data: Mapping[str, Any], model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted names of keys in `data` that `model` (and its nested settings) does not know."""
    unknown = []
    for key, value in data.items():
        info = model.model_fields.get(str(key))
        if info is None:
            unknown.append(f"{prefix}{key}")
            continue
        nested = info.annotation
        if (
            isinstance(value, Mapping)
            and isinstance(nested, type)
            and issubclass(nested, BaseModel)
        ):
            unknown.extend(unknown_keys(value, nested, f"{prefix}{key}."))
    return unknown


def pydantic_message(item: Any) -> str:
    """A pydantic error's text, without the "Value error, " our own validators' get."""
    error = item.get("ctx", {}).get("error")
    if item["type"] == "value_error" and error is not None:
        return str(error)
    return str(item["msg"])


def character_error(error: ValidationError, path: Path) -> CharacterError:
    """One CharacterError from pydantic's errors, naming the first failing field (all in text)."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        problem = pydantic_message(item)
        if item["type"] == "missing":
            last = item["loc"][-1] if item["loc"] else ""
            problem = f"missing item {last}" if isinstance(last, int) else "missing required field"
        problems.append((where, problem))
    field_name, first = problems[0]
    message = first
    if len(problems) > 1:
        message += "; also " + "; ".join(f"'{where}': {problem}" for where, problem in problems[1:])
    return CharacterError(message, path, field_name)
