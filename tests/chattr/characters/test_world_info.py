"""World Info, rule by rule, on lorebooks built here from SillyTavern's documented behaviour."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from chattr.characters.character_set import Character
from chattr.characters.lorebook import LOREBOOK_FILE, LorebookCache, LorebookError, read_lorebook
from chattr.characters.world_info import (
    Lorebook,
    LorebookFormatError,
    Options,
    WorldEntry,
    activate,
    approx_tokens,
    parse_book,
    parse_entry,
)
from chattr.memory import Turn
from chattr.turn.prompt import build_messages


def book(*entries: WorldEntry, **settings: Any) -> Lorebook:
    return Lorebook(entries=tuple(entries), **settings)


def active(lorebook: Lorebook, *chat: str, **options: Any) -> list[str]:
    """The contents activated by the chat (oldest first), in insertion order."""
    random = options.pop("random", None)
    result = activate(lorebook, list(chat), Options(**options), random=random)
    return [entry.content for entry in result.entries]


DRAGON = WorldEntry(keys=("dragon",), content="DRAGON-LORE")


# --- primary keys and scan depth ---------------------------------------------------------------


def test_a_key_in_the_last_two_messages_activates_the_entry() -> None:
    assert active(book(DRAGON), "hello", "I saw a dragon") == ["DRAGON-LORE"]
    assert active(book(DRAGON), "a dragon!", "what was it?") == ["DRAGON-LORE"]  # depth 2


def test_a_key_further_back_than_the_scan_depth_does_not() -> None:
    assert active(book(DRAGON), "a dragon!", "what?", "nothing") == []
    assert active(book(DRAGON), "a dragon!", "what?", "nothing", scan_depth=3) == ["DRAGON-LORE"]
    assert active(book(DRAGON), "a dragon!", scan_depth=0) == []


def test_the_book_and_the_entry_override_the_scan_depth() -> None:
    chat = ("a dragon!", "what?", "nothing", "still nothing")
    assert active(book(DRAGON, scan_depth=4), *chat) == ["DRAGON-LORE"]
    deep = WorldEntry(keys=("dragon",), content="DEEP", scan_depth=4)
    shallow = WorldEntry(keys=("what",), content="SHALLOW", scan_depth=1)
    assert active(book(deep, shallow, scan_depth=1), *chat) == ["DEEP"]


def test_no_entry_without_keys_unless_constant() -> None:
    assert active(book(WorldEntry(content="KEYLESS")), "anything") == []


# --- how keys match ---------------------------------------------------------------------------


def test_keys_match_case_insensitively_by_default() -> None:
    assert active(book(DRAGON), "A DRAGON appears") == ["DRAGON-LORE"]
    strict = WorldEntry(keys=("Dragon",), content="STRICT", case_sensitive=True)
    assert active(book(strict), "a dragon appears") == []
    assert active(book(strict), "a Dragon appears") == ["STRICT"]


def test_keys_match_whole_words_by_default() -> None:
    cat = WorldEntry(keys=("cat",), content="CAT")
    assert active(book(cat), "concatenate the strings") == []
    assert active(book(cat), "the cat, purring.") == ["CAT"]
    loose = WorldEntry(keys=("cat",), content="LOOSE", match_whole_words=False)
    assert active(book(loose), "concatenate the strings") == ["LOOSE"]
    assert active(book(cat), "concatenate", match_whole_words=False) == ["CAT"]


def test_a_key_of_several_words_matches_as_a_phrase() -> None:
    entry = WorldEntry(keys=("red moon",), content="MOON")
    assert active(book(entry), "under the Red Moon tonight") == ["MOON"]
    assert active(book(entry), "the moon is red") == []


def test_keys_in_scripts_without_spaces_match_inside_words() -> None:
    entry = WorldEntry(keys=("龙",), content="LONG")
    assert active(book(entry), "那条龙飞走了") == ["LONG"]


def test_regex_keys() -> None:
    entry = WorldEntry(keys=("/drag(on|ons)\\b/i",), content="REGEX")
    assert active(book(entry), "DRAGONS everywhere") == ["REGEX"]
    assert active(book(entry), "dragonfly") == []
    cased = WorldEntry(keys=("/Drag(on)/",), content="CASED")
    assert active(book(cased), "a dragon") == []  # no i flag: case matters
    named = WorldEntry(keys=("/(?<beast>wyrm)/",), content="NAMED")  # JavaScript's named group
    assert active(book(named), "the wyrm") == ["NAMED"]


def test_use_regex_makes_every_key_a_pattern() -> None:
    entry = WorldEntry(keys=("sw(or|ea)d",), content="SWORD", use_regex=True)
    assert active(book(entry), "a SWORD") == ["SWORD"]
    plain = WorldEntry(keys=("sw(or|ea)d",), content="PLAIN")
    assert active(book(plain), "a sword") == []


def test_an_invalid_regex_key_is_a_plain_key() -> None:
    entry = WorldEntry(keys=("/([unclosed/",), content="LITERAL", match_whole_words=False)
    assert active(book(entry), "type /([unclosed/ here") == ["LITERAL"]


def test_keys_never_match_across_two_messages() -> None:
    entry = WorldEntry(keys=("red moon",), content="MOON")
    assert active(book(entry), "it was red", "moon rising") == []


# --- secondary keys ---------------------------------------------------------------------------


def selective(logic: str) -> WorldEntry:
    return WorldEntry(
        keys=("castle",),
        secondary_keys=("king", "queen"),
        selective_logic=logic,  # type: ignore[arg-type]
        content=logic,
    )


@pytest.mark.parametrize(
    ("logic", "text", "expected"),
    [
        ("AND_ANY", "the castle of the king", True),
        ("AND_ANY", "the castle", False),
        ("AND_ALL", "the castle of the king", False),
        ("AND_ALL", "the castle of the king and queen", True),
        ("NOT_ANY", "the castle", True),
        ("NOT_ANY", "the castle of the queen", False),
        ("NOT_ALL", "the castle of the queen", True),
        ("NOT_ALL", "the castle of the king and queen", False),
        ("NOT_ALL", "the castle", True),
        ("AND_ANY", "the king and queen", False),  # the primary key is always needed
    ],
)
def test_selective_logic(logic: str, text: str, expected: bool) -> None:
    assert active(book(selective(logic)), text) == ([logic] if expected else [])


def test_secondary_keys_count_only_when_the_entry_is_selective() -> None:
    entry = WorldEntry(keys=("castle",), secondary_keys=("king",), selective=False, content="X")
    assert active(book(entry), "the castle") == ["X"]


# --- constant, disabled, decorators, probability ----------------------------------------------


def test_constant_entries_are_always_in_and_disabled_ones_never() -> None:
    constant = WorldEntry(content="ALWAYS", constant=True)
    disabled = WorldEntry(keys=("dragon",), content="NEVER", enabled=False)
    disabled_constant = WorldEntry(content="NEVER-EITHER", constant=True, enabled=False)
    assert active(book(constant, disabled, disabled_constant), "a dragon") == ["ALWAYS"]


def test_activate_and_dont_activate_decorators() -> None:
    forced = parse_entry({"keys": ["nothing"], "content": "@@activate\nFORCED"})
    blocked = parse_entry({"keys": ["dragon"], "content": "@@dont_activate\nBLOCKED"})
    blocked_constant = parse_entry({"content": "@@dont_activate\nB2", "constant": True})
    assert forced.content == "FORCED" and forced.decorators == ("@@activate",)
    assert active(book(forced, blocked, blocked_constant), "a dragon") == ["FORCED"]


def test_depth_role_and_fallback_decorators() -> None:
    entry = parse_entry(
        {"keys": ["x"], "content": "@@depth 0\n@@unknown_one\n@@@role assistant\n@@@role user\nT"}
    )
    # @@@ lines are fallbacks for the unknown decorator before them: the first known one is used
    assert (entry.position, entry.depth, entry.role, entry.content) == (
        "at_depth",
        0,
        "assistant",
        "T",
    )
    assert parse_entry({"keys": ["x"], "content": "@@position before_desc\nT"}).position == (
        "before_char"
    )
    assert parse_entry({"keys": ["x"], "content": "@@scan_depth 5\nT"}).scan_depth == 5


def test_probability_rolls_with_the_given_random_source() -> None:
    entry = WorldEntry(keys=("dragon",), content="RARE", probability=30)
    assert active(book(entry), "a dragon", random=lambda: 0.29) == ["RARE"]
    assert active(book(entry), "a dragon", random=lambda: 0.31) == []
    unused = WorldEntry(keys=("dragon",), content="SURE", probability=30, use_probability=False)
    assert active(book(unused), "a dragon", random=lambda: 0.99) == ["SURE"]
    never = WorldEntry(keys=("dragon",), content="NEVER", probability=0)
    assert active(book(never), "a dragon", random=lambda: 0.001) == []


def test_a_failed_roll_is_not_retried_in_recursion() -> None:
    rolls = iter([0.9, 0.0, 0.0])
    rare = WorldEntry(keys=("dragon", "gold"), content="RARE", probability=50)
    hoard = WorldEntry(keys=("dragon",), content="the gold hoard")
    assert active(book(rare, hoard), "a dragon", random=lambda: next(rolls)) == ["the gold hoard"]


# --- recursion --------------------------------------------------------------------------------

# Orders set so the insertion order is plain (equal orders put the book's later entry first).
KINGDOM = WorldEntry(keys=("kingdom",), content="The kingdom is ruled by the dragon.", order=1)
LAIR = WorldEntry(keys=("dragon",), content="The dragon sleeps in the lair.", order=2)


def test_activated_content_activates_further_entries() -> None:
    assert active(book(KINGDOM, DRAGON), "the kingdom") == [KINGDOM.content, "DRAGON-LORE"]


def test_recursion_stops_at_the_maximum_depth() -> None:
    cave = WorldEntry(keys=("lair",), content="CAVE", order=3)
    chain = book(KINGDOM, LAIR, cave)
    assert active(chain, "the kingdom") == [KINGDOM.content, LAIR.content, "CAVE"]
    assert active(chain, "the kingdom", max_recursion=1) == [KINGDOM.content, LAIR.content]
    assert active(chain, "the kingdom", max_recursion=0) == [KINGDOM.content]
    assert active(book(KINGDOM, LAIR, cave, recursive_scanning=False), "the kingdom") == [
        KINGDOM.content
    ]


def test_exclude_recursion_entries_are_not_activated_by_other_entries() -> None:
    excluded = WorldEntry(keys=("dragon",), content="EXCLUDED", exclude_recursion=True)
    assert active(book(KINGDOM, excluded), "the kingdom") == [KINGDOM.content]
    assert active(book(KINGDOM, excluded), "the dragon") == ["EXCLUDED"]  # the chat still does


def test_prevent_recursion_entries_do_not_activate_others() -> None:
    quiet = WorldEntry(keys=("kingdom",), content=KINGDOM.content, order=1, prevent_recursion=True)
    assert active(book(quiet, DRAGON), "the kingdom") == [KINGDOM.content]


def test_delay_until_recursion_entries_wait_for_other_entries() -> None:
    delayed = WorldEntry(keys=("dragon",), content="DELAYED", delay_until_recursion=True)
    assert active(book(delayed), "a dragon") == ["DELAYED"]  # a second pass still scans the chat
    assert active(book(delayed), "a dragon", max_recursion=0) == []
    assert active(book(KINGDOM, delayed), "the kingdom") == [KINGDOM.content, "DELAYED"]


# --- order, position, budget ------------------------------------------------------------------


def test_entries_are_inserted_by_position_lowest_order_first() -> None:
    entries = (
        WorldEntry(content="BEFORE-20", constant=True, order=20, position="before_char"),
        WorldEntry(content="BEFORE-10", constant=True, order=10, position="before_char"),
        WorldEntry(content="AFTER", constant=True, order=5, position="after_char"),
        WorldEntry(content="D1-SYS", constant=True, position="at_depth", depth=1),
        WorldEntry(content="D1-SYS-B", constant=True, order=200, position="at_depth", depth=1),
        WorldEntry(content="D0-USER", constant=True, position="at_depth", depth=0, role="user"),
    )
    result = activate(book(*entries), ["hi"])
    assert result.before == ("BEFORE-10", "BEFORE-20")
    assert result.after == ("AFTER",)
    # one message per depth and role, its entries lowest order first
    assert sorted((d.depth, d.role, d.content) for d in result.at_depth) == [
        (0, "user", "D0-USER"),
        (1, "system", "D1-SYS\nD1-SYS-B"),
    ]


def test_the_token_budget_keeps_the_highest_order_entries() -> None:
    big = "word " * 40  # 50 approximate tokens with its newline
    low = WorldEntry(content="LOW " + big, constant=True, order=1)
    high = WorldEntry(content="HIGH " + big, constant=True, order=50)
    small = WorldEntry(content="SMALL", constant=True, order=0)
    assert approx_tokens(high.content + "\n") <= 60
    result = activate(book(low, high, small), ["hi"], Options(budget_tokens=60))
    # the scan stops at the first entry that does not fit: a later, smaller one stays out too
    assert [e.content.split()[0] for e in result.entries] == ["HIGH"]
    assert result.budget_overflowed
    both = activate(book(low, high, small, token_budget=200), ["hi"], Options(budget_tokens=60))
    assert [e.content.split()[0] for e in both.entries] == ["SMALL", "LOW", "HIGH"]


def test_macros_are_resolved_in_keys_and_content() -> None:
    entry = WorldEntry(keys=("{{char}}'s sword",), content="{{char}} forged it for {{user}}.")
    result = activate(
        book(entry),
        ["Tell me of Mira's sword"],
        render=lambda text: text.replace("{{char}}", "Mira").replace("{{user}}", "Ada"),
    )
    assert result.before == ("Mira forged it for Ada.",)


# --- parsing the three shapes -----------------------------------------------------------------


def test_parse_a_character_book_with_sillytavern_extensions() -> None:
    data = {
        "name": "Lore",
        "scan_depth": 3,
        "token_budget": 500,
        "recursive_scanning": False,
        "entries": [
            {
                "keys": ["castle"],
                "secondary_keys": ["king"],
                "selective": True,
                "content": "C",
                "enabled": True,
                "insertion_order": 7,
                "case_sensitive": True,
                "position": "after_char",
                "comment": "the castle",
                "use_regex": True,
                "extensions": {
                    "position": 4,
                    "depth": 2,
                    "role": 2,
                    "selectiveLogic": 3,
                    "probability": 40,
                    "useProbability": True,
                    "scan_depth": 5,
                    "match_whole_words": False,
                    "exclude_recursion": True,
                    "prevent_recursion": True,
                    "delay_until_recursion": True,
                    "vectorized": True,
                },
            },
            {"keys": "a, b", "content": "D", "position": "before_char", "secondary_keys": ["x"]},
        ],
    }
    parsed = parse_book(data)
    assert (parsed.name, parsed.scan_depth, parsed.token_budget) == ("Lore", 3, 500)
    assert parsed.recursive_scanning is False
    first, second = parsed.entries
    assert first == WorldEntry(
        keys=("castle",),
        content="C",
        uid=0,
        comment="the castle",
        secondary_keys=("king",),
        selective=True,
        selective_logic="AND_ALL",
        order=7,
        position="at_depth",
        depth=2,
        role="assistant",
        probability=40,
        scan_depth=5,
        case_sensitive=True,
        match_whole_words=False,
        use_regex=True,
        exclude_recursion=True,
        prevent_recursion=True,
        delay_until_recursion=True,
        vectorized=True,
    )
    # CCv2 defaults: not selective unless it says so (as SillyTavern converts cards)
    assert (second.keys, second.position, second.selective, second.order) == (
        ("a", "b"),
        "before_char",
        False,
        100,
    )


def test_parse_a_sillytavern_world_info_export() -> None:
    data = {
        "entries": {
            "3": {
                "uid": 3,
                "key": ["tower"],
                "keysecondary": ["wizard"],
                "comment": "Tower",
                "content": "T",
                "constant": False,
                "selectiveLogic": 2,
                "order": 42,
                "position": 1,
                "disable": False,
                "probability": 100,
                "useProbability": True,
                "depth": 4,
                "role": None,
                "scanDepth": None,
                "caseSensitive": None,
                "matchWholeWords": None,
                "excludeRecursion": False,
                "preventRecursion": True,
            },
            "4": {"uid": 4, "key": ["old"], "content": "O", "disable": True, "position": 2},
        }
    }
    tower, old = parse_book(data).entries
    assert (tower.uid, tower.keys, tower.secondary_keys, tower.selective) == (
        3,
        ("tower",),
        ("wizard",),
        True,  # SillyTavern's own entries are selective
    )
    assert (tower.selective_logic, tower.order, tower.position) == ("NOT_ANY", 42, "after_char")
    assert tower.prevent_recursion and tower.comment == "Tower" and tower.case_sensitive is None
    # the author's note position goes in at depth 4, as system
    assert (old.enabled, old.position, old.depth, old.role) == (False, "at_depth", 4, "system")
    assert active(parse_book(data), "the tower") == ["T"]
    assert active(parse_book(data), "the tower and the wizard") == []


def test_chattrs_own_form_round_trips() -> None:
    original = parse_book(
        {"name": "B", "entries": [{"keys": ["k"], "content": "@@depth 1\nX", "constant": True}]}
    )
    again = parse_book(json.loads(json.dumps(original.to_json())))
    assert again == original
    assert again.entries[0].decorators == ("@@depth 1",) and again.entries[0].depth == 1


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"keys": 5}, "keys must be a list"),
        ({"keys": ["a"], "extensions": {"selectiveLogic": 9}}, "unknown selective logic 9"),
        ({"keys": ["a"], "extensions": {"role": "narrator"}}, "unknown role 'narrator'"),
        ({"keys": ["a"], "position": "sideways"}, "unknown position 'sideways'"),
        ({"keys": ["a"], "content": 3}, "expected text"),
        ({"keys": ["a"], "order": "soon"}, "expected a number"),
    ],
)
def test_bad_entries_are_named(entry: dict[str, Any], words: str) -> None:
    with pytest.raises(LorebookFormatError) as caught:
        parse_book({"entries": [{"content": "fine"}, entry]})
    assert str(caught.value).startswith("entry 1: ") and words in str(caught.value)


# --- the file and the prompt ------------------------------------------------------------------


def test_lorebook_file_errors_name_the_file_not_the_path(tmp_path: Path) -> None:
    (tmp_path / LOREBOOK_FILE).write_text('{"entries": [{"keys": 1}]}')
    with pytest.raises(LorebookError) as caught:
        read_lorebook(tmp_path)
    assert str(caught.value).startswith("lorebook.json: entry 0")
    assert str(tmp_path) not in str(caught.value)
    (tmp_path / LOREBOOK_FILE).write_text("{not json")
    with pytest.raises(LorebookError, match="not valid JSON"):
        read_lorebook(tmp_path)
    assert read_lorebook(tmp_path / "nowhere") is None


def test_the_cache_rereads_a_changed_file(tmp_path: Path) -> None:
    cache = LorebookCache()
    path = tmp_path / LOREBOOK_FILE
    path.write_text(json.dumps({"entries": [{"keys": ["a"], "content": "ONE"}]}))
    first = cache.get(tmp_path)
    assert first is not None and cache.get(tmp_path) is first
    path.write_text(json.dumps({"entries": [{"keys": ["a"], "content": "TWO, longer"}]}))
    second = cache.get(tmp_path)
    assert second is not None and second.entries[0].content == "TWO, longer"
    path.unlink()
    assert cache.get(tmp_path) is None


@pytest.fixture
def mira(tmp_path: Path) -> Iterator[Character]:
    yield Character(
        id="mira",
        folder=tmp_path,
        name="Mira",
        description="A captain.",
        background="DESCRIPTION",
        scenario="SCENARIO",
        greeting="Hello.",
        example_dialogue="EXAMPLES",
        system_prompt="SYSTEM",
    )


def test_the_prompt_places_entries_by_position(mira: Character) -> None:
    entries = (
        WorldEntry(content="WI-BEFORE", constant=True, position="before_char"),
        WorldEntry(content="WI-AFTER", constant=True, position="after_char"),
        WorldEntry(content="WI-DEPTH-2", constant=True, position="at_depth", depth=2),
        WorldEntry(
            content="WI-DEPTH-0", constant=True, position="at_depth", depth=0, role="assistant"
        ),
        WorldEntry(content="WI-DEEP", constant=True, position="at_depth", depth=99, role="user"),
    )
    world = activate(book(*entries), ["hi"])
    recent = [Turn("", "Opening."), Turn("first", "reply one"), Turn("second", "reply two")]
    messages = build_messages(mira, "third", recent=recent, world=world)
    system = messages[0].content
    assert isinstance(system, str)
    order = [system.index(s) for s in ("SYSTEM", "WI-BEFORE", "DESCRIPTION", "SCENARIO")]
    assert order == sorted(order)
    assert system.index("SCENARIO") < system.index("WI-AFTER") < system.index("EXAMPLES")
    shown = [(type(m).__name__, m.content) for m in messages[1:]]
    assert shown == [
        ("HumanMessage", "WI-DEEP"),  # deeper than the chat: at its start
        ("AIMessage", "Opening."),  # the chosen greeting, a turn without a user part
        ("HumanMessage", "first"),
        ("AIMessage", "reply one"),
        ("HumanMessage", "second"),
        ("SystemMessage", "WI-DEPTH-2"),
        ("AIMessage", "reply two"),
        ("HumanMessage", "third"),
        ("AIMessage", "WI-DEPTH-0"),
    ]
    assert isinstance(messages[-1], AIMessage) and not isinstance(messages[1], SystemMessage)
    assert isinstance(messages[2], AIMessage) and isinstance(messages[3], HumanMessage)


def test_equal_orders_put_the_books_later_entry_first() -> None:
    # SillyTavern walks entries highest order first, prepending each: ties come out reversed.
    first = WorldEntry(content="FIRST", constant=True)
    second = WorldEntry(content="SECOND", constant=True)
    assert activate(book(first, second), ["hi"]).before == ("SECOND", "FIRST")


def test_entries_must_be_a_list_or_an_object() -> None:
    with pytest.raises(LorebookFormatError, match="'entries' must be a list"):
        parse_book({"entries": "nope"})
