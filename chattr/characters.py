"""Characters: one folder per character (character.yaml, portrait, voice clip, knowledge files).

A character folder looks like this::

    characters/napoleon/
        character.yaml      # the fields of `Character` (id and folder come from the folder itself)
        portrait.png        # `PortraitSettings.file`
        voice.wav           # `VoiceSettings.reference`, the clip the voice is cloned from
        knowledge/*.md      # facts the character can be asked about, indexed for retrieval
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

logger = logging.getLogger(__name__)

CHARACTER_FILE = "character.yaml"
KNOWLEDGE_DIR = "knowledge"
KNOWLEDGE_SUFFIXES = (".md", ".txt")
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
# character.yaml is read whole and parsed in pure Python (~1 s a MB): bigger is a mistake.
MAX_CHARACTER_FILE_BYTES = 2 * 1024 * 1024
# The text fields reach the prompt on every turn: 200,000 characters a field (~50k tokens),
# 400,000 for all of them together, is already more than most models' context.
MAX_FIELD_CHARS = 200_000
MAX_TEXT_CHARS = 400_000

# SillyTavern's macros: {{char}} / {{user}} in any case (spaces inside the braces tolerated), and
# the legacy <BOT>, <CHAR>, <USER> forms older cards still carry.
_CHAR_MACRO = re.compile(r"\{\{\s*char\s*\}\}|<(?:bot|char)>", re.IGNORECASE)
_USER_MACRO = re.compile(r"\{\{\s*user\s*\}\}|<user>", re.IGNORECASE)

PixelBox = tuple[
    Annotated[int, Field(ge=0)],
    Annotated[int, Field(ge=0)],
    Annotated[int, Field(gt=0)],
    Annotated[int, Field(gt=0)],
]


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


def _capped_text(value: str) -> str:
    if len(value) > MAX_FIELD_CHARS:
        raise ValueError(
            f"is {len(value):,} characters long; the most a field may hold is {MAX_FIELD_CHARS:,}"
        )
    return value


CappedText = Annotated[str, AfterValidator(_capped_text)]


def total_text_chars(data: BaseModel) -> int:
    """The characters of every text field of a model (strings and lists of strings)."""
    total = 0
    for name in type(data).model_fields:
        value = getattr(data, name)
        if isinstance(value, str):
            total += len(value)
        elif isinstance(value, list):
            total += sum(len(item) for item in value if isinstance(item, str))
    return total


def check_total_text(data: BaseModel) -> None:
    """Refuse a character (or card) whose text fields together exceed MAX_TEXT_CHARS."""
    total = total_text_chars(data)
    if total > MAX_TEXT_CHARS:
        raise ValueError(
            f"the text fields hold {total:,} characters together; the most is {MAX_TEXT_CHARS:,}"
        )


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

    reference: FolderFile = "voice.wav"  # relative to the character folder, and inside it
    language: str = "en"
    speed: float = Field(default=1.0, gt=0.25, le=4.0)
    # What of a reply is spoken (the page always shows all of it): everything but markdown,
    # everything but *actions* and (stage directions), or only "quoted" dialogue.
    speak: Literal["all", "skip_actions", "quotes_only"] = "skip_actions"


class PortraitSettings(BaseModel):
    """The portrait the talking head animates, with optional hand-measured boxes."""

    model_config = ConfigDict(extra="ignore")

    file: FolderFile = "portrait.png"  # relative to the character folder, and inside it
    # x, y, w, h in pixels, for portraits where automatic face detection fails (drawings)
    face_box: PixelBox | None = None
    mouth_box: PixelBox | None = None


class Character(BaseModel):
    """One character, as loaded from its folder."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(pattern=ID_PATTERN.pattern, exclude=True)  # the folder's name
    name: CappedText = Field(min_length=1)
    description: CappedText = Field(min_length=1)  # one line, for the gallery
    background: CappedText = ""  # who the character is, in prose (a card's "description")
    personality: CappedText = ""
    scenario: CappedText = ""
    greeting: CappedText = Field(min_length=1)
    alternate_greetings: list[CappedText] = []
    example_dialogue: CappedText = ""
    system_prompt: CappedText = ""
    post_history_instructions: CappedText = ""
    language: str = "en"
    voice: VoiceSettings = Field(default_factory=VoiceSettings)
    portrait: PortraitSettings = Field(default_factory=PortraitSettings)
    tags: list[str] = []
    creator: CappedText = ""
    creator_notes: CappedText = ""  # for people browsing characters; never sent to the model
    folder: Path = Field(exclude=True)

    @model_validator(mode="after")
    def _bounded(self) -> Character:
        check_total_text(self)
        return self

    @field_validator("name", "greeting")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("description")
    @classmethod
    def _one_line(cls, value: str) -> str:
        line = " ".join(value.split())
        if not line:
            raise ValueError("must not be blank")
        return line

    def portrait_path(self) -> Path | None:
        """The portrait image file, or None when the folder has none (or it points outside)."""
        return self._own_file(self.portrait.file, "portrait.file")

    def voice_path(self) -> Path | None:
        """The reference voice clip, or None when the folder has none (or it points outside)."""
        return self._own_file(self.voice.reference, "voice.reference")

    def _own_file(self, relative: str, field_name: str) -> Path | None:
        # Checked again on every use: the folder may have changed since it was loaded.
        path = confined_file(self.folder, relative)
        if path is None:
            logger.warning(
                "character '%s': %s '%s' points outside its folder; ignored",
                self.id,
                field_name,
                relative,
            )
            return None
        return path if path.is_file() else None

    def knowledge_documents(self) -> dict[str, str]:
        """The knowledge files, read from disk now: {"knowledge/x.md": text}, sorted by path."""
        knowledge = self.folder / KNOWLEDGE_DIR
        if not knowledge.is_dir():
            return {}
        documents = {}
        for path in sorted(knowledge.rglob("*")):
            if not (path.is_file() and path.suffix.lower() in KNOWLEDGE_SUFFIXES):
                continue
            name = path.relative_to(self.folder).as_posix()
            if confined_file(self.folder, name) is None:
                logger.warning(
                    "character '%s': skipping %s, a link to outside its folder", self.id, name
                )
                continue
            documents[name] = path.read_text(encoding="utf-8")
        return documents

    def greetings(self) -> list[str]:
        """The greetings a conversation can open with: the main one (0), then the alternates."""
        return [self.greeting, *(text for text in self.alternate_greetings if text.strip())]

    def render(self, text: str, user: str = "User") -> str:
        """Resolve the {{char}} and {{user}} macros (and legacy <BOT>/<USER>) in card text."""
        return render_macros(text, self.name, user)

    def persona_prompt(
        self, user: str = "User", *, before: Sequence[str] = (), after: Sequence[str] = ()
    ) -> str:
        """The character's part of the system prompt: instructions, who they are, example talk.

        `before` and `after` are World Info entries placed around the character definition
        (description, personality, scenario), as SillyTavern places them.
        """
        parts = [self.system_prompt or f"You are {{{{char}}}}. Stay in character as {self.name}."]
        parts.extend(text for text in before if text.strip())
        if self.background:
            parts.append(self.background)
        if self.personality:
            parts.append(f"{{{{char}}}}'s personality: {self.personality}")
        if self.scenario:
            parts.append(f"Scenario: {self.scenario}")
        parts.extend(text for text in after if text.strip())
        if self.example_dialogue:
            parts.append(f"Examples of how {{{{char}}}} talks:\n{self.example_dialogue}")
        return self.render("\n\n".join(part.strip() for part in parts), user)

    def to_yaml(self) -> str:
        """The character.yaml text for this character (without id and folder, which are paths)."""
        data = self.model_dump(mode="json", exclude_defaults=False)
        return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100)


def render_macros(text: str, char: str, user: str) -> str:
    """Replace {{char}}/{{user}} (any case) and the legacy <BOT>/<CHAR>/<USER> forms."""
    # Functions, not replacement strings, so a name with a backslash stays literal.
    text = _CHAR_MACRO.sub(lambda _: char, text)
    return _USER_MACRO.sub(lambda _: user, text)


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings as `|` blocks so character.yaml stays readable."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


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


class CharacterNotFound(LookupError):
    """No character with that id."""

    def __init__(self, character_id: str, known: list[str]) -> None:
        self.character_id = character_id
        self.known = sorted(known)
        super().__init__(
            f"no character '{character_id}'; known: {', '.join(self.known) or '(none)'}"
        )

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class CharacterSet:
    """The characters that loaded, and the errors of those that did not."""

    characters: dict[str, Character] = field(default_factory=dict)
    errors: list[CharacterError] = field(default_factory=list)

    def get(self, character_id: str) -> Character:
        """The character with that id; raises CharacterNotFound naming the known ones."""
        try:
            return self.characters[character_id]
        except KeyError:
            raise CharacterNotFound(character_id, list(self.characters)) from None

    def __iter__(self) -> Iterator[Character]:
        return iter(self.characters.values())

    def __len__(self) -> int:
        return len(self.characters)

    def __contains__(self, character_id: object) -> bool:
        return character_id in self.characters


def load_character(folder: Path) -> Character:
    """Load one character folder; raises CharacterError naming the file and the field."""
    folder = Path(folder)
    if not ID_PATTERN.fullmatch(folder.name):
        raise CharacterError(
            f"folder name '{folder.name}' is not a valid character id "
            "(lowercase letters, digits, '-' and '_', at most 64, starting with a letter or digit)",
            folder,
            "id",
        )
    path = folder / CHARACTER_FILE
    data = _read_yaml(path)
    for key in ("id", "folder"):
        if key in data:
            logger.warning("%s: ignoring '%s'; it comes from the folder's location", path, key)
            del data[key]
    for unknown in _unknown_keys(data, Character):
        logger.warning("%s: unknown field '%s' ignored", path, unknown)
    try:
        character = Character.model_validate(
            {**data, "id": folder.name, "folder": folder.resolve()}
        )
    except ValidationError as error:
        raise _character_error(error, path) from None
    except RecursionError:
        raise CharacterError("nested too deeply", path) from None
    for field_name, relative in (
        ("portrait.file", character.portrait.file),
        ("voice.reference", character.voice.reference),
    ):
        # The file may be missing (no portrait, no voice), but never a link out of the folder.
        if confined_file(character.folder, relative) is None:
            raise CharacterError(
                f"'{relative}' leads outside the character's folder; name a file inside it",
                path,
                field_name,
            )
    return character


def load_characters(directory: Path) -> CharacterSet:
    """Load every character folder under `directory`; a broken one never stops the others."""
    directory = Path(directory)
    found = CharacterSet()
    if not directory.is_dir():
        found.errors.append(CharacterError("characters directory does not exist", directory))
        logger.warning("%s", found.errors[-1])
        return found
    for folder in sorted(directory.iterdir()):
        # Hidden and underscore folders are work areas (an import in progress), not characters.
        if not folder.is_dir() or folder.name.startswith((".", "_")):
            continue
        try:
            character = load_character(folder)
        except CharacterError as error:
            logger.warning("skipping character: %s", error)
            found.errors.append(error)
        else:
            found.characters[character.id] = character
    return found


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


def _unknown_keys(data: Mapping[str, Any], model: type[BaseModel], prefix: str = "") -> list[str]:
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
            unknown.extend(_unknown_keys(value, nested, f"{prefix}{key}."))
    return unknown


def pydantic_message(item: Any) -> str:
    """A pydantic error's text, without the "Value error, " our own validators' get."""
    error = item.get("ctx", {}).get("error")
    if item["type"] == "value_error" and error is not None:
        return str(error)
    return str(item["msg"])


def _character_error(error: ValidationError, path: Path) -> CharacterError:
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
