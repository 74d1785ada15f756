"""Characters: one folder per character (character.yaml, portrait, voice clip, knowledge files).

The folder itself (the id rule, the `voice` and `portrait` sections, finding each file inside the
folder, reading character.yaml) is the contract all three programs share, in
`chatacter_common.character_folder`; here is what chattr adds: the card's text and the prompt.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from chatacter_common.character_folder import (
    CHARACTER_FILE,
    CHARACTER_ID,
    KNOWLEDGE_DIR,
    KNOWLEDGE_SUFFIXES,
    MAX_CHARACTER_FILE_BYTES,
    CharacterError,
    FileFieldError,
    FolderFile,
    PixelBox,
    PortraitSettings,
    VoiceSettings,
    background_file,
    character_folders,
    check_character_id,
    confined_file,
    expression_file,
    expression_files,
    find_file,
    is_character_id,
    pydantic_message,
    read_character_file,
    unknown_keys,
    validate_character,
)

__all__ = [
    "CHARACTER_FILE",
    "DEFAULT_TALKATIVENESS",
    "ID_PATTERN",
    "KNOWLEDGE_DIR",
    "KNOWLEDGE_SUFFIXES",
    "MAX_CHARACTER_FILE_BYTES",
    "CappedText",
    "Character",
    "CharacterError",
    "CharacterNotFound",
    "CharacterSet",
    "FileFieldError",
    "FolderFile",
    "PixelBox",
    "PortraitSettings",
    "VoiceSettings",
    "check_total_text",
    "confined_file",
    "is_character_id",
    "load_character",
    "load_characters",
    "pydantic_message",
    "render_macros",
    "total_text_chars",
]

logger = logging.getLogger(__name__)

ID_PATTERN = CHARACTER_ID  # the name chattr's modules know it by
# The text fields reach the prompt on every turn: 200,000 characters a field (~50k tokens),
# 400,000 for all of them together, is already more than most models' context.
MAX_FIELD_CHARS = 200_000
# SillyTavern's talkativeness when a card gives none.
DEFAULT_TALKATIVENESS = 0.5
MAX_TEXT_CHARS = 400_000

# SillyTavern's macros: {{char}} / {{user}} in any case (spaces inside the braces tolerated), and
# the legacy <BOT>, <CHAR>, <USER> forms older cards still carry.
_CHAR_MACRO = re.compile(r"\{\{\s*char\s*\}\}|<(?:bot|char)>", re.IGNORECASE)
_USER_MACRO = re.compile(r"\{\{\s*user\s*\}\}|<user>", re.IGNORECASE)


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


class Character(BaseModel):
    """One character, as loaded from its folder."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(pattern=ID_PATTERN.pattern, exclude=True)  # the folder's name
    name: CappedText = Field(min_length=1)
    # Another name the character answers to in a scene ("Boney"); a card's V3 `nickname`.
    nickname: CappedText = ""
    description: CappedText = Field(min_length=1)  # one line, for the gallery
    background: CappedText = ""  # who the character is, in prose (a card's "description")
    personality: CappedText = ""
    scenario: CappedText = ""
    greeting: CappedText = Field(min_length=1)
    alternate_greetings: list[CappedText] = []
    # Greetings for scenes only (a card's V3 `group_only_greetings`); a scene opens with the
    # first, else with `greeting`.
    group_only_greetings: list[CappedText] = []
    # How likely the character speaks up in a scene when not named (SillyTavern's
    # talkativeness): 0 only when named, 1 always.
    talkativeness: float = Field(default=DEFAULT_TALKATIVENESS, ge=0.0, le=1.0)
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
        return find_file(self.id, self.folder, self.portrait.candidates(), "portrait.file")

    def voice_path(self) -> Path | None:
        """The reference voice clip, or None when the folder has none (or it points outside)."""
        return find_file(self.id, self.folder, self.voice.candidates(), "voice.reference")

    def expression_path(self, label: str) -> Path | None:
        """The sprite for an emotion label (`expressions/<label>.png`...), or None."""
        return expression_file(self.id, self.folder, label)

    def expressions(self) -> dict[str, Path]:
        """Every emotion label with a sprite, and its file."""
        return expression_files(self.id, self.folder)

    def background_path(self) -> Path | None:
        """The picture shown behind the chat (`background.png`...), or None."""
        return background_file(self.id, self.folder)

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

    def scene_greeting(self) -> str:
        """The line the character opens a scene with: its first scene-only greeting, else the
        main one."""
        return next((text for text in self.group_only_greetings if text.strip()), self.greeting)

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
    check_character_id(folder)
    path = folder / CHARACTER_FILE
    data = read_character_file(folder)
    for unknown in unknown_keys(data, Character):
        logger.warning("%s: unknown field '%s' ignored", path, unknown)
    return validate_character(Character, folder, data)


def load_characters(directory: Path) -> CharacterSet:
    """Load every character folder under `directory`; a broken one never stops the others."""
    directory = Path(directory)
    found = CharacterSet()
    if not directory.is_dir():
        found.errors.append(CharacterError("characters directory does not exist", directory))
        logger.warning("%s", found.errors[-1])
        return found
    for folder in character_folders(directory):
        try:
            character = load_character(folder)
        except CharacterError as error:
            logger.warning("skipping character: %s", error)
            found.errors.append(error)
        else:
            found.characters[character.id] = character
    return found
