"""SillyTavern card import on cards built here: JSON and PNG, V1-V3, lorebooks, macros, errors."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngImageFile, PngInfo

from chattr.characters.cards import (
    CardError,
    CharacterExistsError,
    import_card,
    read_card,
    slugify,
)
from chattr.characters.character_set import load_characters
from chattr.characters.lorebook import read_lorebook


def card_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Captain Mira Vance",
        "description": "{{char}} is the captain of the airship Kestrel. She distrusts nobles.",
        "personality": "dry, brave, curious",
        "scenario": "{{user}} has stowed away aboard the Kestrel.",
        "first_mes": "*{{char}} finds <USER> behind the crates.* Well, {{user}}, explain yourself.",
        "mes_example": "<START>\n{{user}}: Where are we going?\n{{char}}: Up.",
        "creator_notes": "Best with a playful tone. SECRET-CREATOR-NOTE",
        "system_prompt": "Write as {{char}}; never speak for {{user}}.",
        "post_history_instructions": "Keep {{char}}'s answers under three sentences.",
        "alternate_greetings": ["{{char}} waves at {{user}}.", "Storm ahead, {{User}}!"],
        "tags": ["adventure", "airship"],
        "creator": "tester",
        "character_version": "1.2",
        "extensions": {"talkativeness": "0.5"},
        "character_book": {
            "name": "Kestrel lore",
            "entries": [
                {
                    "keys": ["Kestrel", "airship"],
                    "content": "The Kestrel's engine burns blue sky-coal mined on Ostra.",
                    "enabled": True,
                    "insertion_order": 20,
                },
                {
                    "keys": ["Ostra"],
                    "content": "Ostra is a floating island ruled by {{char}}'s sister.",
                    "enabled": True,
                    "insertion_order": 10,
                },
                {"keys": ["hidden"], "content": "DISABLED-ENTRY-TEXT", "enabled": False},
            ],
        },
    }
    data.update(overrides)
    return data


def v2(**overrides: Any) -> dict[str, Any]:
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": card_data(**overrides)}


def v3(**overrides: Any) -> dict[str, Any]:
    data = card_data(**overrides)
    data.update(nickname="Mira", group_only_greetings=[], assets=[], creation_date=1700000000)
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": data}


def encoded(document: Any) -> str:
    return base64.b64encode(json.dumps(document).encode("utf-8")).decode("ascii")


def portrait_image() -> Image.Image:
    """A small picture with structure, so a lossless copy can be told from anything else."""
    ys, xs = np.mgrid[0:96, 0:80]
    pixels = np.stack([xs * 3, ys * 2, (xs + ys) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels)


def write_png(path: Path, chunks: dict[str, str], *, itxt: bool = False) -> Path:
    info = PngInfo()
    for keyword, text in chunks.items():
        if itxt:
            info.add_itxt(keyword, text, zip=True)
        else:
            info.add_text(keyword, text)
    portrait_image().save(path, format="PNG", pnginfo=info)
    return path


def write_json(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


# --- reading ----------------------------------------------------------------------------------


def test_read_v2_json(tmp_path: Path) -> None:
    card = read_card(write_json(tmp_path / "mira.json", v2()))
    assert card.spec == "chara_card_v2"
    assert card.name == "Captain Mira Vance"
    assert card.first_mes.startswith("*{{char}} finds")
    assert card.alternate_greetings == ("{{char}} waves at {{user}}.", "Storm ahead, {{User}}!")
    assert card.image is None
    assert [entry.keys for entry in card.lorebook] == [
        ("Kestrel", "airship"),
        ("Ostra",),
        ("hidden",),
    ]


def test_read_v2_png(tmp_path: Path) -> None:
    card = read_card(write_png(tmp_path / "mira.png", {"chara": encoded(v2())}))
    assert card.spec == "chara_card_v2" and card.name == "Captain Mira Vance"
    assert card.image is not None and card.image.startswith(b"\x89PNG")


def test_v3_chunk_is_preferred_over_v2(tmp_path: Path) -> None:
    chunks = {"chara": encoded(v2(name="Old Name")), "ccv3": encoded(v3(name="New Name"))}
    card = read_card(write_png(tmp_path / "both.png", chunks))
    assert card.spec == "chara_card_v3" and card.name == "New Name"


def test_v3_in_compressed_itxt_chunk(tmp_path: Path) -> None:
    card = read_card(write_png(tmp_path / "v3.png", {"ccv3": encoded(v3())}, itxt=True))
    assert card.spec == "chara_card_v3" and card.personality == "dry, brave, curious"


def test_v1_flat_card_reads_with_defaults(tmp_path: Path) -> None:
    document = {"name": "Old Timer", "description": "From before the spec.", "first_mes": "Howdy."}
    card = read_card(write_json(tmp_path / "v1.json", document))
    assert card.spec == "chara_card_v1"
    assert card.first_mes == "Howdy." and card.system_prompt == "" and card.lorebook == ()


def test_nulls_and_string_keys_are_tolerated(tmp_path: Path) -> None:
    book = {"entries": [{"keys": "alpha, beta", "content": "Greek letters.", "enabled": None}]}
    document = v2(alternate_greetings=None, tags=None, character_book=book, creator_notes=None)
    card = read_card(write_json(tmp_path / "nulls.json", document))
    assert card.alternate_greetings == () and card.tags == () and card.creator_notes == ""
    assert card.lorebook[0].keys == ("alpha", "beta") and card.lorebook[0].enabled


# --- importing --------------------------------------------------------------------------------


def test_import_v2_json_maps_every_field(tmp_path: Path) -> None:
    characters_dir = tmp_path / "characters"
    character = import_card(write_json(tmp_path / "mira.json", v2()), characters_dir)

    assert character.id == "captain-mira-vance"
    assert character.folder == (characters_dir / "captain-mira-vance").resolve()
    assert (character.folder / "character.yaml").is_file()
    assert character.name == "Captain Mira Vance"
    # the gallery's one line: the description's first sentence, macros resolved
    assert character.description == "Captain Mira Vance is the captain of the airship Kestrel."
    assert character.background == card_data()["description"]
    assert character.personality == "dry, brave, curious"
    assert character.scenario == card_data()["scenario"]
    assert character.greeting == card_data()["first_mes"]
    assert character.alternate_greetings == card_data()["alternate_greetings"]
    assert character.example_dialogue == card_data()["mes_example"]
    assert character.system_prompt == card_data()["system_prompt"]
    assert character.post_history_instructions == card_data()["post_history_instructions"]
    assert character.tags == ["adventure", "airship"] and character.creator == "tester"
    assert character.portrait_path() is None  # a JSON card has no image
    # creator notes are kept for people, never put in the prompt
    assert "SECRET-CREATOR-NOTE" in character.creator_notes
    assert "SECRET-CREATOR-NOTE" not in character.persona_prompt("Ada")


def test_lorebook_becomes_lorebook_json_not_knowledge(tmp_path: Path) -> None:
    character = import_card(write_json(tmp_path / "mira.json", v2()), tmp_path / "characters")
    assert character.knowledge_documents() == {}  # no entry is vectorized
    stored = json.loads((character.folder / "lorebook.json").read_text())
    assert stored["format"] == "chattr-lorebook/1" and stored["name"] == "Kestrel lore"
    assert [e["keys"] for e in stored["entries"]] == [["Kestrel", "airship"], ["Ostra"], ["hidden"]]
    assert [e["order"] for e in stored["entries"]] == [20, 10, 100]
    # the disabled entry is kept, marked disabled: World Info never activates it
    assert [e["enabled"] for e in stored["entries"]] == [True, True, False]
    book = read_lorebook(character.folder)
    assert book is not None and book.entries == read_card(tmp_path / "mira.json").lorebook


def test_vectorized_entries_also_become_a_knowledge_file(tmp_path: Path) -> None:
    book = {
        "name": "Kestrel lore",
        "entries": [
            {"keys": ["Ostra"], "content": "Ostra floats.", "extensions": {"vectorized": True}},
            {"keys": ["Kestrel"], "content": "KEYWORD-ONLY-ENTRY", "insertion_order": 5},
        ],
    }
    card = write_json(tmp_path / "mira.json", v2(character_book=book))
    character = import_card(card, tmp_path / "characters")
    documents = character.knowledge_documents()
    assert list(documents) == ["knowledge/lorebook.md"]
    assert "## Ostra\n\nOstra floats." in documents["knowledge/lorebook.md"]
    assert "KEYWORD-ONLY-ENTRY" not in documents["knowledge/lorebook.md"]
    stored = read_lorebook(character.folder)
    assert stored is not None and [e.vectorized for e in stored.entries] == [True, False]


def test_import_png_keeps_the_image_without_the_card_chunk(tmp_path: Path) -> None:
    card_path = write_png(tmp_path / "mira.png", {"chara": encoded(v2())})
    character = import_card(card_path, tmp_path / "characters")
    portrait = character.portrait_path()
    assert portrait is not None and portrait.name == "portrait.png"
    with Image.open(portrait) as image:
        assert isinstance(image, PngImageFile)
        assert not image.text  # the base64 card is not copied into the portrait
        assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(portrait_image()))


def test_import_v3_png(tmp_path: Path) -> None:
    card_path = write_png(tmp_path / "v3.png", {"ccv3": encoded(v3(name="Vega of Ostra"))})
    character = import_card(card_path, tmp_path / "characters")
    assert character.id == "vega-of-ostra"
    assert character.portrait_path() is not None
    assert (character.folder / "lorebook.json").is_file()


def test_macros_are_resolved_where_card_text_reaches_the_prompt(tmp_path: Path) -> None:
    character = import_card(write_json(tmp_path / "mira.json", v2()), tmp_path / "characters")
    greeting = character.render(character.greeting, user="Ada")
    assert (
        greeting == "*Captain Mira Vance finds Ada behind the crates.* Well, Ada, explain yourself."
    )
    assert [character.render(text, "Ada") for text in character.alternate_greetings] == [
        "Captain Mira Vance waves at Ada.",
        "Storm ahead, Ada!",
    ]
    prompt = character.persona_prompt("Ada")
    assert "Write as Captain Mira Vance; never speak for Ada." in prompt
    assert "Ada: Where are we going?\nCaptain Mira Vance: Up." in prompt
    assert "{{" not in prompt and "<USER>" not in prompt and "<BOT>" not in prompt
    book = read_lorebook(character.folder)
    assert book is not None
    assert "Ostra is a floating island ruled by Captain Mira Vance's sister." in character.render(
        book.entries[1].content
    )


def test_card_with_only_a_name_imports_with_defaults(tmp_path: Path) -> None:
    document = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Zoë Ünïcode!"}}
    character = import_card(write_json(tmp_path / "bare.json", document), tmp_path / "characters")
    assert character.id == "zoe-unicode"
    assert character.render(character.greeting) == "Hello, I'm Zoë Ünïcode!."
    assert character.description == "Imported from bare.json"
    assert character.personality == character.system_prompt == character.example_dialogue == ""
    assert character.alternate_greetings == [] and character.knowledge_documents() == {}
    assert character.voice_path() is None


def test_v1_card_imports(tmp_path: Path) -> None:
    document = {"name": "Old Timer", "description": "A prospector. Gruff.", "first_mes": "Howdy."}
    character = import_card(write_json(tmp_path / "v1.json", document), tmp_path / "characters")
    assert character.greeting == "Howdy." and character.description == "A prospector."


def test_existing_character_needs_overwrite(tmp_path: Path) -> None:
    characters_dir = tmp_path / "characters"
    import_card(write_json(tmp_path / "a.json", v2()), characters_dir)
    with pytest.raises(CharacterExistsError, match="already exists"):
        import_card(write_json(tmp_path / "b.json", v2(personality="gentle")), characters_dir)
    assert load_characters(characters_dir).get("captain-mira-vance").personality != "gentle"

    replaced = import_card(
        write_json(tmp_path / "b.json", v2(personality="gentle", character_book=None)),
        characters_dir,
        overwrite=True,
    )
    assert replaced.personality == "gentle"
    assert replaced.knowledge_documents() == {}  # nothing of the old folder survives
    assert not (replaced.folder / "lorebook.json").exists()
    assert [path.name for path in characters_dir.iterdir()] == ["captain-mira-vance"]


def test_imported_characters_load_beside_the_others(tmp_path: Path) -> None:
    characters_dir = tmp_path / "characters"
    (characters_dir / "broken").mkdir(parents=True)
    (characters_dir / "broken" / "character.yaml").write_text("name: [")
    import_card(write_png(tmp_path / "mira.png", {"chara": encoded(v2())}), characters_dir)
    import_card(write_json(tmp_path / "v3.json", v3(name="Vega")), characters_dir)
    found = load_characters(characters_dir)
    assert sorted(found.characters) == ["captain-mira-vance", "vega"]
    assert [error.path.parent.name for error in found.errors] == ["broken"]


@pytest.mark.parametrize(
    ("name", "slug"),
    [("Napoléon Bonaparte", "napoleon-bonaparte"), ("  R2-D2 ", "r2-d2"), ("!!!", "character")],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_long_names_make_valid_ids() -> None:
    assert len(slugify("a very long name " * 10)) <= 64
    assert not slugify("a very long name " * 10).endswith("-")


# --- broken cards -----------------------------------------------------------------------------


def write_broken(tmp_path: Path, kind: str) -> Path:
    if kind == "bad base64":
        return write_png(tmp_path / "card.png", {"chara": "this is not base64 ***"})
    if kind == "base64 but not JSON":
        text = base64.b64encode(b"name: not json").decode()
        return write_png(tmp_path / "card.png", {"chara": text})
    if kind == "JSON file not JSON":
        path = tmp_path / "card.json"
        path.write_text('{"spec": "chara_card_v2", "data": {"name": "X",}')
        return path
    if kind == "binary file":
        path = tmp_path / "card.json"
        path.write_bytes(zlib.compress(b"x" * 100))
        return path
    if kind == "wrong spec":
        return write_json(tmp_path / "card.json", {"spec": "tavern_card_v9", "data": card_data()})
    if kind == "missing name":
        data = card_data()
        del data["name"]
        return write_png(
            tmp_path / "card.png", {"chara": encoded({"spec": "chara_card_v2", "data": data})}
        )
    if kind == "blank name":
        return write_json(tmp_path / "card.json", v3(name="   "))
    if kind == "wrong type":
        return write_json(tmp_path / "card.json", v2(first_mes=42))
    if kind == "wrong type in lorebook":
        book = {"entries": [{"keys": ["a"], "content": ["not", "text"]}]}
        return write_json(tmp_path / "card.json", v2(character_book=book))
    if kind == "data not an object":
        return write_json(tmp_path / "card.json", {"spec": "chara_card_v2", "data": "Mira"})
    if kind == "not an object":
        return write_json(tmp_path / "card.json", ["chara_card_v2"])
    if kind == "PNG without a card":
        return write_png(tmp_path / "card.png", {"Comment": "just a picture"})
    if kind == "missing file":
        return tmp_path / "nowhere.png"
    raise AssertionError(kind)


BROKEN_CARDS = {
    # kind: (field named, words in the message)
    "bad base64": ("chara", "not valid base64"),
    "base64 but not JSON": ("chara", "not valid JSON (line 1, column 1"),
    "JSON file not JSON": (None, "not valid JSON (line 1"),
    "binary file": (None, "not UTF-8"),
    "wrong spec": ("spec", "unsupported card spec 'tavern_card_v9'"),
    "missing name": ("data.name", "missing required field"),
    "blank name": ("data.name", "blank"),
    "wrong type": ("data.first_mes", "valid string"),
    "wrong type in lorebook": ("data.character_book.entries.0.content", "valid string"),
    "data not an object": ("data", "not an object"),
    "not an object": (None, "expected a JSON object, found list"),
    "PNG without a card": ("chara", "no 'chara' (V2) or 'ccv3' (V3) text chunk"),
    "missing file": (None, "cannot read"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_CARDS))
def test_broken_card_names_file_and_field(tmp_path: Path, kind: str) -> None:
    field, words = BROKEN_CARDS[kind]
    path = write_broken(tmp_path, kind)
    with pytest.raises(CardError) as caught:
        read_card(path)
    error = caught.value
    assert error.path == path and str(error).startswith(f"{path.name}: ")
    assert str(tmp_path) not in str(error)
    assert error.field == field
    if field:
        assert f"field '{field}'" in str(error)
    assert words in str(error)


@pytest.mark.parametrize("kind", ["bad base64", "missing name", "PNG without a card"])
def test_broken_card_import_writes_nothing(tmp_path: Path, kind: str) -> None:
    characters_dir = tmp_path / "characters"
    characters_dir.mkdir()
    with pytest.raises(CardError):
        import_card(write_broken(tmp_path, kind), characters_dir)
    assert list(characters_dir.iterdir()) == []


# --- what scenes read -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("talkativeness", "expected"),
    [("0.3", 0.3), (0.9, 0.9), (0, 0.0), ("loud", 0.5), (1.5, 0.5), (True, 0.5), (None, 0.5)],
)
def test_scene_fields_of_a_card_are_imported(
    tmp_path: Path, talkativeness: Any, expected: float
) -> None:
    # SillyTavern writes talkativeness as a string in extensions; what is no number from 0 to 1
    # leaves the default.
    document = v3(extensions={"talkativeness": talkativeness, "fav": False})
    document["data"].update(group_only_greetings=["", "{{char}} joins the table."])
    character = import_card(write_json(tmp_path / "mira.json", document), tmp_path / "characters")
    assert character.talkativeness == expected
    assert character.nickname == "Mira"
    assert character.group_only_greetings == ["{{char}} joins the table."]
    assert character.render(character.scene_greeting()) == "Captain Mira Vance joins the table."
    # Scene-only greetings never open a one-character chat.
    assert character.greetings() == [character.greeting, *character.alternate_greetings]


def test_a_card_whose_extensions_are_not_an_object_still_imports(tmp_path: Path) -> None:
    character = import_card(
        write_json(tmp_path / "mira.json", v2(extensions=["odd"])), tmp_path / "characters"
    )
    assert character.talkativeness == 0.5 and character.scene_greeting() == character.greeting
