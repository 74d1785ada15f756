"""World Info (lorebooks) as SillyTavern applies it: which entries a conversation activates.

Pure: no files, no network. `parse_book` reads a lorebook in any of the shapes cards carry (a
CCv2/CCv3 `character_book`, SillyTavern's exported world-info JSON, or chattr's own
`lorebook.json`); `activate` scans the most recent messages and returns the entries to insert, by
position. The rules follow SillyTavern's documented behaviour:

- An entry activates when one of its primary keys appears in the last `scan_depth` messages
  (default 2; the book's and the entry's own `scan_depth` override it). Keys match
  case-insensitively and as whole words by default (`case_sensitive`, `match_whole_words` per
  entry); a key written `/pattern/flags` is a regular expression (CCv3 `use_regex` makes every key
  one). A key of several words matches as a phrase.
- With secondary keys (and `selective`), the selective logic decides: AND_ANY (one secondary key
  too), NOT_ALL (not all of them), NOT_ANY (none of them), AND_ALL (all of them).
- Constant entries are always in, disabled entries never; `@@activate` / `@@dont_activate`
  decorators force either way.
- `use_probability` with `probability` < 100 rolls the dice (the random source is injectable).
- Recursion: the content of activated entries is scanned again for further entries, up to a
  number of passes; `exclude_recursion` entries are never activated by other entries' content,
  `prevent_recursion` entries' content never activates others, `delay_until_recursion` entries
  only by other entries' content.
- A token budget (approximate tokens) caps what is inserted: entries are taken by insertion order,
  highest first, until the next one would overflow it; then the scan stops.
- Inserted by position: before or after the character definition, or at a depth among the recent
  messages as a system, user or assistant message; lower insertion order first.
"""

from __future__ import annotations

import functools
import math
import random as _random
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Position = Literal["before_char", "after_char", "at_depth"]
Role = Literal["system", "user", "assistant"]
Logic = Literal["AND_ANY", "NOT_ALL", "NOT_ANY", "AND_ALL"]

LOGICS: tuple[Logic, ...] = ("AND_ANY", "NOT_ALL", "NOT_ANY", "AND_ALL")  # SillyTavern's 0..3
ROLES: tuple[Role, ...] = ("system", "user", "assistant")  # SillyTavern's 0..2
DEFAULT_SCAN_DEPTH = 2
DEFAULT_DEPTH = 4  # SillyTavern's default insertion depth (and the author's note depth)
DEFAULT_BUDGET_TOKENS = 1024
DEFAULT_MAX_RECURSION = 5
MAX_SCAN_DEPTH = 1000
FORMAT = "chattr-lorebook/1"

# SillyTavern's numeric positions: 0 before char, 1 after char, 2/3 author's note top/bottom,
# 4 at depth, 5/6 example messages top/bottom. The author's note sits at depth 4 as system; the
# example messages follow the character definition.
_ST_POSITIONS: dict[int, Position] = {
    0: "before_char",
    1: "after_char",
    2: "at_depth",
    3: "at_depth",
    4: "at_depth",
    5: "after_char",
    6: "after_char",
}
_POSITION_NAMES: dict[str, Position] = {
    "before_char": "before_char",
    "before_desc": "before_char",
    "before": "before_char",
    "after_char": "after_char",
    "after_desc": "after_char",
    "after": "after_char",
    "personality": "after_char",
    "scenario": "after_char",
    "at_depth": "at_depth",
    "depth": "at_depth",
}
KNOWN_DECORATORS = (
    "@@activate",
    "@@dont_activate",
    "@@depth",
    "@@role",
    "@@scan_depth",
    "@@position",
)


@dataclass(frozen=True)
class WorldEntry:
    """One lorebook entry, normalised from whatever shape the card carried."""

    keys: tuple[str, ...] = ()
    content: str = ""
    uid: int = 0
    comment: str = ""
    secondary_keys: tuple[str, ...] = ()
    selective: bool = True
    selective_logic: Logic = "AND_ANY"
    enabled: bool = True
    constant: bool = False
    order: float = 100
    position: Position = "before_char"
    depth: int = DEFAULT_DEPTH
    role: Role = "system"
    probability: float = 100
    use_probability: bool = True
    scan_depth: int | None = None
    case_sensitive: bool | None = None
    match_whole_words: bool | None = None
    use_regex: bool = False
    exclude_recursion: bool = False
    prevent_recursion: bool = False
    delay_until_recursion: bool = False
    vectorized: bool = False
    decorators: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.comment

    def to_json(self) -> dict[str, Any]:
        """This entry in chattr's lorebook.json form (every field, snake_case)."""
        data: dict[str, Any] = {}
        for key in self.__dataclass_fields__:
            value = getattr(self, key)
            data[key] = list(value) if isinstance(value, tuple) else value
        return data


@dataclass(frozen=True)
class Lorebook:
    """A lorebook: its entries and the book-wide settings cards may carry."""

    entries: tuple[WorldEntry, ...] = ()
    name: str = ""
    scan_depth: int | None = None
    token_budget: int | None = None
    recursive_scanning: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.name,
            "scan_depth": self.scan_depth,
            "token_budget": self.token_budget,
            "recursive_scanning": self.recursive_scanning,
            "entries": [entry.to_json() for entry in self.entries],
        }


@dataclass(frozen=True)
class Options:
    """Settings of the scan that are not the book's own."""

    scan_depth: int = DEFAULT_SCAN_DEPTH
    budget_tokens: int = DEFAULT_BUDGET_TOKENS
    max_recursion: int = DEFAULT_MAX_RECURSION  # passes after the first; 0: no recursion
    case_sensitive: bool = False
    match_whole_words: bool = True


@dataclass(frozen=True)
class DepthInsert:
    """Entries inserted as one message `depth` messages from the end of the chat."""

    depth: int
    role: Role
    content: str


@dataclass(frozen=True)
class Activation:
    """What a scan activated, ready for the prompt."""

    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    at_depth: tuple[DepthInsert, ...] = ()
    entries: tuple[WorldEntry, ...] = ()  # every activated entry, in insertion order
    budget_overflowed: bool = False

    @property
    def empty(self) -> bool:
        return not self.entries


class LorebookFormatError(ValueError):
    """A lorebook that cannot be read; the message names the entry and the field."""


# --- parsing ---------------------------------------------------------------------------------


def parse_book(data: Mapping[str, Any]) -> Lorebook:
    """A Lorebook from a character_book, SillyTavern world-info JSON or chattr's lorebook.json."""
    if not isinstance(data, Mapping):
        raise LorebookFormatError(f"expected an object, found {type(data).__name__}")
    raw_entries = data.get("entries") or []
    if isinstance(raw_entries, Mapping):  # SillyTavern's editor keys entries by uid
        raw_entries = list(raw_entries.values())
    if not isinstance(raw_entries, list):
        raise LorebookFormatError("'entries' must be a list or an object of entries")
    entries = []
    for index, raw in enumerate(raw_entries):
        if not isinstance(raw, Mapping):
            raise LorebookFormatError(f"entry {index}: expected an object")
        try:
            entries.append(parse_entry(raw, index))
        except (TypeError, ValueError) as error:
            raise LorebookFormatError(f"entry {index}: {error}") from None
    extensions = data.get("extensions") if isinstance(data.get("extensions"), Mapping) else {}
    assert isinstance(extensions, Mapping)
    return Lorebook(
        entries=tuple(entries),
        name=_text(data.get("name")),
        scan_depth=_opt_int(_first(data, extensions, "scan_depth")),
        token_budget=_opt_int(_first(data, extensions, "token_budget")),
        recursive_scanning=_opt_bool(_first(data, extensions, "recursive_scanning")),
    )


def parse_entry(raw: Mapping[str, Any], index: int = 0) -> WorldEntry:
    """One entry, whichever of the three shapes it has (fields are looked up by their names)."""
    ext = raw.get("extensions")
    ext = ext if isinstance(ext, Mapping) else {}
    assert isinstance(ext, Mapping)

    def pick(*names: str) -> Any:
        """The first present (non-null) value: the entry's own fields, then its extensions."""
        for source in (raw, ext):
            for name in names:
                if source.get(name) is not None:
                    return source[name]
        return None

    keys = _keys(pick("keys", "key"))
    secondary = _keys(pick("secondary_keys", "keysecondary"))
    if "disable" in raw and raw["disable"] is not None:
        enabled = not _bool(raw["disable"])
    else:
        enabled = _bool(pick("enabled"), True)
    st_shape = "key" in raw or "uid" in raw or "disable" in raw
    # A CCv2 entry is selective only when it says so; SillyTavern's own entries default to it.
    selective = _bool(pick("selective"), st_shape)
    uid = _opt_int(pick("uid", "id"))
    position, depth, role = _placement(raw, ext)
    content = _text(raw.get("content"))
    decorators = tuple(_text(d) for d in raw.get("decorators") or ())
    if content.startswith("@@"):
        found, content = parse_decorators(content)
        decorators += found
    entry = WorldEntry(
        keys=keys,
        content=content,
        uid=index if uid is None else uid,
        comment=_text(pick("comment", "name")),
        secondary_keys=secondary,
        selective=selective,
        selective_logic=_logic(pick("selective_logic", "selectiveLogic")),
        enabled=enabled,
        constant=_bool(pick("constant")),
        order=_number(pick("order", "insertion_order"), 100),
        position=position,
        depth=depth,
        role=role,
        probability=_number(pick("probability"), 100),
        use_probability=_bool(pick("use_probability", "useProbability"), True),
        scan_depth=_opt_int(pick("scan_depth", "scanDepth")),
        case_sensitive=_opt_bool(pick("case_sensitive", "caseSensitive")),
        match_whole_words=_opt_bool(pick("match_whole_words", "matchWholeWords")),
        use_regex=_bool(pick("use_regex")),
        exclude_recursion=_bool(pick("exclude_recursion", "excludeRecursion")),
        prevent_recursion=_bool(pick("prevent_recursion", "preventRecursion")),
        delay_until_recursion=_bool(pick("delay_until_recursion", "delayUntilRecursion")),
        vectorized=_bool(pick("vectorized")),
        decorators=decorators,
    )
    return _apply_decorators(entry)


def _placement(raw: Mapping[str, Any], ext: Mapping[str, Any]) -> tuple[Position, int, Role]:
    # SillyTavern's numeric position (in extensions for cards) wins over CCv2's string.
    value = ext.get("position")
    if value is None or isinstance(value, str):
        value = raw.get("position") if value is None else value
    position: Position = "before_char"
    if isinstance(value, bool):
        raise ValueError(f"field 'position': unknown position {value!r}")
    if isinstance(value, int | float):
        position = _ST_POSITIONS.get(int(value), "before_char")
    elif isinstance(value, str) and value.strip():
        name = value.strip().lower()
        if name.isdigit():
            position = _ST_POSITIONS.get(int(name), "before_char")
        elif name in _POSITION_NAMES:
            position = _POSITION_NAMES[name]
        else:
            raise ValueError(f"field 'position': unknown position {value!r}")
    depth_value = raw.get("depth") if raw.get("depth") is not None else ext.get("depth")
    depth = _opt_int(depth_value)
    role_value = raw.get("role") if raw.get("role") is not None else ext.get("role")
    return position, DEFAULT_DEPTH if depth is None else max(0, depth), _role(role_value)


def parse_decorators(content: str) -> tuple[tuple[str, ...], str]:
    """CCv3 decorators: the leading `@@name value` lines of an entry's content, and the rest.

    A `@@@` line is a fallback, used only when the decorator before it is not known here.
    """
    lines = content.split("\n")
    decorators: list[str] = []
    fallback = False
    rest = ""
    for index, line in enumerate(lines):
        if not line.startswith("@@"):
            rest = "\n".join(lines[index:])
            break
        if line.startswith("@@@"):
            if fallback and _known_decorator(line[1:]):
                decorators.append(line[1:].strip())
                fallback = False
            continue
        if _known_decorator(line):
            decorators.append(line.strip())
            fallback = False
        else:
            fallback = True
    return tuple(decorators), rest


def _known_decorator(line: str) -> bool:
    name = line.split(None, 1)[0] if line.strip() else ""
    return name in KNOWN_DECORATORS


def _apply_decorators(entry: WorldEntry) -> WorldEntry:
    changes: dict[str, Any] = {}
    for decorator in entry.decorators:
        name, _, value = decorator.partition(" ")
        value = value.strip()
        if name == "@@depth" and _opt_int(value) is not None:
            changes.update(position="at_depth", depth=max(0, _opt_int(value) or 0))
        elif name == "@@role" and value:
            changes["role"] = _role(value)
        elif name == "@@scan_depth" and _opt_int(value) is not None:
            changes["scan_depth"] = _opt_int(value)
        elif name == "@@position" and value.lower() in _POSITION_NAMES:
            changes["position"] = _POSITION_NAMES[value.lower()]
    return replace(entry, **changes) if changes else entry


def _first(data: Mapping[str, Any], ext: Mapping[str, Any], name: str) -> Any:
    return data.get(name) if data.get(name) is not None else ext.get(name)


def _keys(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):  # some editors store one comma-separated string
        value = value.split(",")
    if not isinstance(value, list | tuple):
        raise ValueError(f"keys must be a list of strings, found {type(value).__name__}")
    return tuple(str(key).strip() for key in value if str(key).strip())


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"expected text, found {type(value).__name__}")
    return value


def _bool(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _opt_bool(value: Any) -> bool | None:
    return None if value is None else _bool(value)


def _number(value: Any, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, found {value!r}") from None
    return number if math.isfinite(number) else default


def _opt_int(value: Any) -> int | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _logic(value: Any) -> Logic:
    if value is None:
        return "AND_ANY"
    if isinstance(value, str) and value.strip().upper() in LOGICS:
        return value.strip().upper()  # type: ignore[return-value]
    number = _opt_int(value)
    if number is not None and 0 <= number < len(LOGICS):
        return LOGICS[number]
    raise ValueError(f"unknown selective logic {value!r}")


def _role(value: Any) -> Role:
    if value is None:
        return "system"
    if isinstance(value, str) and value.strip().lower() in ROLES:
        return value.strip().lower()  # type: ignore[return-value]
    number = _opt_int(value)
    if number is not None and 0 <= number < len(ROLES):
        return ROLES[number]
    raise ValueError(f"unknown role {value!r}")


# --- matching --------------------------------------------------------------------------------

_JS_FLAGS = {"i": re.IGNORECASE, "s": re.DOTALL, "m": re.MULTILINE}
_REGEX_KEY = re.compile(r"^/([\s\S]+?)/([gimsuyd]*)$")


def regex_key(key: str) -> re.Pattern[str] | None:
    """A `/pattern/flags` key as a compiled pattern; None when it is not one (or is invalid)."""
    match = _REGEX_KEY.match(key)
    if not match:
        return None
    pattern, flags = match.groups()
    if re.search(r"(^|[^\\])/", pattern):  # an unescaped delimiter: not a regex key
        return None
    return _compile(pattern.replace("\\/", "/"), sum(_JS_FLAGS.get(f, 0) for f in set(flags)))


def _compile(pattern: str, flags: int) -> re.Pattern[str] | None:
    pattern = re.sub(r"\(\?<(?![=!])", "(?P<", pattern)  # JavaScript's named groups
    try:
        return re.compile(pattern, flags)
    except (re.error, OverflowError, RecursionError):
        return None


def _unspaced(text: str) -> bool:
    """True when the text uses a script written without spaces between words (CJK, Thai...)."""
    for char in text:
        if unicodedata.east_asian_width(char) in ("W", "F") and char.isalpha():
            return True
        if "\u0e00" <= char <= "\u0eff" or "\u1000" <= char <= "\u109f":  # Thai, Lao, Burmese
            return True
    return False


def match_key(
    haystack: str, key: str, entry: WorldEntry, options: Options, lowered: str | None = None
) -> bool:
    """Whether one key matches the scanned text, by the entry's (or the default) rules.

    `lowered` is `haystack.lower()` when the caller has it already.
    """
    case_sensitive = (
        options.case_sensitive if entry.case_sensitive is None else entry.case_sensitive
    )
    pattern = _regex(key, case_sensitive, entry.use_regex)
    if pattern is not None:
        return pattern.search(haystack) is not None
    if not case_sensitive:  # as SillyTavern does: both sides lower-cased
        haystack = haystack.lower() if lowered is None else lowered
        key = key.lower()
    if key not in haystack:  # the quick test first; most keys are absent
        return False
    whole = entry.match_whole_words
    if whole is None:
        whole = options.match_whole_words
    if not whole or len(key.split()) > 1 or _unspaced(key):
        return True
    return _whole_word(key).search(haystack) is not None


@functools.lru_cache(maxsize=4096)
def _regex(key: str, case_sensitive: bool, use_regex: bool) -> re.Pattern[str] | None:
    """The pattern of a regex key (`/.../flags`, or any key with CCv3 `use_regex`), else None."""
    pattern = regex_key(key)
    if pattern is None and use_regex:
        pattern = _compile(key, 0 if case_sensitive else re.IGNORECASE)
    return pattern


@functools.lru_cache(maxsize=4096)
def _whole_word(key: str) -> re.Pattern[str]:
    # SillyTavern's (?:^|\W)key(?:$|\W), as lookarounds: keys that begin or end with
    # punctuation still match, and the search can skip ahead to the key's first letters.
    return re.compile(rf"(?<!\w){re.escape(key)}(?!\w)")


# --- the scan --------------------------------------------------------------------------------


def approx_tokens(text: str) -> int:
    """Approximate tokens: about four characters each, one per CJK character."""
    wide = sum(1 for char in text if unicodedata.east_asian_width(char) in ("W", "F"))
    return math.ceil(wide + (len(text) - wide) / 4)


@dataclass
class _Scan:
    chat: list[str]  # newest first
    options: Options
    book: Lorebook
    recurse: list[str] = field(default_factory=list)
    _texts: dict[tuple[int, int], tuple[str, str]] = field(default_factory=dict)

    def text(self, entry: WorldEntry) -> tuple[str, str]:
        """The text an entry's keys are looked for in, and it lower-cased."""
        depth = entry.scan_depth
        if depth is None:
            depth = self.book.scan_depth if self.book.scan_depth is not None else None
        if depth is None:
            depth = self.options.scan_depth
        depth = max(0, min(depth, MAX_SCAN_DEPTH))
        cached = self._texts.get((depth, len(self.recurse)))
        if cached is None:
            # A separator no key contains, so a key never matches across two messages.
            parts = [message.strip() for message in self.chat[:depth]] + self.recurse
            text = "\x01" + "\n\x01".join(parts)
            cached = self._texts[(depth, len(self.recurse))] = (text, text.lower())
        return cached


def activate(
    book: Lorebook,
    chat: Sequence[str],
    options: Options | None = None,
    *,
    random: Callable[[], float] | None = None,
    render: Callable[[str], str] = lambda text: text,
) -> Activation:
    """Scan `chat` (oldest first; the new message last) and return the entries to insert.

    `random` returns a float in [0, 1) for probability rolls; `render` resolves macros
    ({{char}}, {{user}}) in keys and content.
    """
    options = options or Options()
    roll = random or _random.random
    budget = book.token_budget if book.token_budget and book.token_budget > 0 else None
    budget = budget or options.budget_tokens
    recursion = options.max_recursion > 0 and book.recursive_scanning is not False
    ordered = _sorted_entries(book.entries, render)
    scan = _Scan(chat=[message for message in reversed(chat)], options=options, book=book)

    activated: list[WorldEntry] = []
    done: set[int] = set()  # indices into `ordered`: activated or failed their roll
    used = 0
    overflowed = False
    delayed_pending = recursion and any(e.delay_until_recursion for e in ordered)
    passes = 0
    recursive = False
    while True:
        found = [
            index
            for index, entry in enumerate(ordered)
            if index not in done and _triggers(entry, scan, recursive)
        ]
        new: list[WorldEntry] = []
        for index in found:
            entry = ordered[index]
            done.add(index)
            rolled = entry.use_probability and entry.probability < 100
            if rolled and roll() * 100 > entry.probability:
                continue
            cost = approx_tokens(entry.content + "\n")
            if used + cost > budget:
                overflowed = True
                break
            used += cost
            new.append(entry)
        activated.extend(new)
        feed = [entry.content for entry in new if not entry.prevent_recursion]
        if overflowed or not recursion or passes >= options.max_recursion:
            break
        if not feed and not (delayed_pending and not recursive):
            break
        passes += 1
        recursive = True
        if feed:
            scan.recurse.append("\n".join(feed))
    return _placed(activated, ordered, overflowed)


def _sorted_entries(
    entries: Sequence[WorldEntry], render: Callable[[str], str]
) -> list[WorldEntry]:
    """Usable entries, highest insertion order first (ties keep the book's order)."""
    usable = [
        replace(
            entry,
            keys=tuple(render(key) for key in entry.keys),
            secondary_keys=tuple(render(key) for key in entry.secondary_keys),
            content=render(entry.content),
        )
        for entry in entries
        if entry.enabled
    ]
    return sorted(usable, key=lambda entry: -entry.order)


def _triggers(entry: WorldEntry, scan: _Scan, recursive: bool) -> bool:
    if entry.delay_until_recursion and not recursive:
        return False
    if recursive and entry.exclude_recursion:
        return False
    if "@@activate" in entry.decorators:
        return True
    if "@@dont_activate" in entry.decorators:
        return False
    if entry.constant:
        return True
    if not entry.keys:
        return False
    text, lowered = scan.text(entry)
    if not any(match_key(text, key, entry, scan.options, lowered) for key in entry.keys):
        return False
    if not (entry.selective and entry.secondary_keys):
        return True
    hits = [match_key(text, key, entry, scan.options, lowered) for key in entry.secondary_keys]
    if entry.selective_logic == "AND_ANY":
        return any(hits)
    if entry.selective_logic == "NOT_ALL":
        return not all(hits)
    if entry.selective_logic == "NOT_ANY":
        return not any(hits)
    return all(hits)  # AND_ALL


def _placed(activated: list[WorldEntry], ordered: list[WorldEntry], overflowed: bool) -> Activation:
    # SillyTavern walks the entries highest order first and prepends each one: the result is
    # lowest order first, and among equal orders the book's later entry first.
    rank = {id(entry): index for index, entry in enumerate(ordered)}
    final = sorted(activated, key=lambda entry: (entry.order, -rank[id(entry)]))
    before = tuple(e.content for e in final if e.position == "before_char" and e.content.strip())
    after = tuple(e.content for e in final if e.position == "after_char" and e.content.strip())
    groups: dict[tuple[int, Role], list[str]] = {}
    for entry in final:
        if entry.position == "at_depth" and entry.content.strip():
            groups.setdefault((entry.depth, entry.role), []).append(entry.content)
    depth = tuple(
        DepthInsert(depth=key[0], role=key[1], content="\n".join(contents))
        for key, contents in groups.items()
    )
    return Activation(
        before=before,
        after=after,
        at_depth=depth,
        entries=tuple(final),
        budget_overflowed=overflowed,
    )
