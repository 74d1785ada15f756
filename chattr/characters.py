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
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

logger = logging.getLogger(__name__)

CHARACTER_FILE = "character.yaml"
KNOWLEDGE_DIR = "knowledge"
KNOWLEDGE_SUFFIXES = (".md", ".txt")
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")

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


class VoiceSettings(BaseModel):
    """How the character sounds: the reference clip to clone and how to speak."""

    model_config = ConfigDict(extra="ignore")

    reference: str = "voice.wav"  # relative to the character folder
    language: str = "en"
    speed: float = Field(default=1.0, gt=0.25, le=4.0)
    # What of a reply is spoken (the page always shows all of it): everything but markdown,
    # everything but *actions* and (stage directions), or only "quoted" dialogue.
    speak: Literal["all", "skip_actions", "quotes_only"] = "skip_actions"


class PortraitSettings(BaseModel):
    """The portrait the talking head animates, with optional hand-measured boxes."""

    model_config = ConfigDict(extra="ignore")

    file: str = "portrait.png"  # relative to the character folder
    # x, y, w, h in pixels, for portraits where automatic face detection fails (drawings)
    face_box: PixelBox | None = None
    mouth_box: PixelBox | None = None


class Character(BaseModel):
    """One character, as loaded from its folder."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(pattern=ID_PATTERN.pattern, exclude=True)  # the folder's name
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)  # one line, for the gallery
    background: str = ""  # who the character is, in prose (a card's "description")
    personality: str = ""
    scenario: str = ""
    greeting: str = Field(min_length=1)
    alternate_greetings: list[str] = []
    example_dialogue: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    language: str = "en"
    voice: VoiceSettings = Field(default_factory=VoiceSettings)
    portrait: PortraitSettings = Field(default_factory=PortraitSettings)
    tags: list[str] = []
    creator: str = ""
    creator_notes: str = ""  # for people browsing characters; never sent to the model
    folder: Path = Field(exclude=True)

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
        """The portrait image file, or None when the folder has none."""
        path = self.folder / self.portrait.file
        return path if path.is_file() else None

    def voice_path(self) -> Path | None:
        """The reference voice clip, or None when the folder has none."""
        path = self.folder / self.voice.reference
        return path if path.is_file() else None

    def knowledge_documents(self) -> dict[str, str]:
        """The knowledge files, read from disk now: {"knowledge/x.md": text}, sorted by path."""
        knowledge = self.folder / KNOWLEDGE_DIR
        if not knowledge.is_dir():
            return {}
        files = sorted(
            path
            for path in knowledge.rglob("*")
            if path.is_file() and path.suffix.lower() in KNOWLEDGE_SUFFIXES
        )
        return {
            path.relative_to(self.folder).as_posix(): path.read_text(encoding="utf-8")
            for path in files
        }

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
        where = f"{path}: field '{field}'" if field else str(path)
        super().__init__(f"{where}: {message}")


class CharacterError(FileFieldError):
    """A character folder that cannot be loaded."""


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
        return Character.model_validate({**data, "id": folder.name, "folder": folder.resolve()})
    except ValidationError as error:
        raise _character_error(error, path) from None


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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CharacterError(f"missing {CHARACTER_FILE}", path) from None
    except (OSError, UnicodeDecodeError) as error:
        raise CharacterError(f"cannot read: {error}", path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise CharacterError(f"invalid YAML at {line}{error.problem}", path) from None
    except yaml.YAMLError as error:
        raise CharacterError(f"invalid YAML: {error}", path) from None
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


def _character_error(error: ValidationError, path: Path) -> CharacterError:
    """One CharacterError from pydantic's errors, naming the first failing field (all in text)."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        problem = item["msg"]
        if item["type"] == "missing":
            last = item["loc"][-1] if item["loc"] else ""
            problem = f"missing item {last}" if isinstance(last, int) else "missing required field"
        problems.append((where, problem))
    field_name, first = problems[0]
    message = first
    if len(problems) > 1:
        message += "; also " + "; ".join(f"'{where}': {problem}" for where, problem in problems[1:])
    return CharacterError(message, path, field_name)
