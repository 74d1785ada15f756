"""Characters: the shipped ones load with their media and knowledge; broken folders are reported."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import sys
import wave
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from chattr.characters.character_set import (
    Character,
    CharacterError,
    CharacterNotFound,
    load_character,
    load_characters,
)

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "characters"
MEDIA_SCRIPT = REPO / "scripts" / "make_character_media.py"

MINIMAL_YAML = """\
name: Ada Lovelace
description: Mathematician, first to publish an algorithm for a machine.
greeting: Good day, {{user}}. I am {{char}}.
"""


def write_character(directory: Path, character_id: str, text: str) -> Path:
    folder = directory / character_id
    folder.mkdir(parents=True)
    (folder / "character.yaml").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def shipped() -> dict[str, Character]:
    found = load_characters(SHIPPED)
    assert found.errors == []
    return found.characters


@pytest.fixture(scope="module")
def media_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_character_media", MEDIA_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# --- the shipped characters -------------------------------------------------------------------


def test_shipped_characters_load_with_their_fields(shipped: dict[str, Character]) -> None:
    assert {"napoleon", "einstein"} <= set(shipped)
    for character in shipped.values():
        assert character.folder == SHIPPED / character.id
        assert "\n" not in character.description
        for text in (character.personality, character.scenario, character.example_dialogue):
            assert len(text.split()) >= 20, character.id
        assert character.greeting and character.alternate_greetings
        # the prompt asks for short spoken answers, which the voice and video need
        assert "few short sentences" in " ".join(character.system_prompt.split())
        assert character.language == character.voice.language == "en"


def test_persona_prompt_resolves_every_macro(shipped: dict[str, Character]) -> None:
    for character in shipped.values():
        prompt = character.persona_prompt("Ada")
        assert character.name in prompt and "Ada" in prompt
        assert "{{" not in prompt and "<USER>" not in prompt
        assert character.render(character.example_dialogue, "Ada").strip() in prompt


def test_shipped_knowledge_holds_probeable_facts(shipped: dict[str, Character]) -> None:
    napoleon = " ".join(shipped["napoleon"].knowledge_documents().values())
    einstein = " ".join(shipped["einstein"].knowledge_documents().values())
    assert "Saint Helena" in napoleon and "5 May 1821" in napoleon
    assert "21 March 1804" in napoleon  # the Civil Code
    assert "photoelectric effect" in einstein and "Nobel Prize in Physics for 1921" in einstein
    assert "14 March 1879" in einstein
    for character in shipped.values():
        documents = character.knowledge_documents()
        assert len(documents) >= 3
        assert list(documents) == sorted(documents)
        assert all(key.startswith("knowledge/") and key.endswith(".md") for key in documents)
        words = sum(len(text.split()) for text in documents.values())
        assert 1500 <= words <= 3000, (character.id, words)


def test_shipped_portraits_are_small_squares_with_boxes_inside(
    shipped: dict[str, Character],
) -> None:
    for character in shipped.values():
        path = character.portrait_path()
        assert path is not None and path.stat().st_size < 400_000
        with Image.open(path) as image:
            width, height = image.size
        assert (width, height) == (512, 512)
        face, mouth = character.portrait.face_box, character.portrait.mouth_box
        assert face is not None and mouth is not None
        fx, fy, fw, fh = face
        mx, my, mw, mh = mouth
        assert fx + fw <= width and fy + fh <= height
        assert fx <= mx and fy <= my and mx + mw <= fx + fw and my + mh <= fy + fh
        assert my > fy + fh / 2  # the mouth sits in the lower half of the face


def test_shipped_portraits_are_what_the_script_draws(
    shipped: dict[str, Character], media_script: ModuleType
) -> None:
    """The committed PNGs and declared boxes come from the script, so it can regenerate them."""
    for character_id, draw in media_script.PORTRAITS.items():
        character = shipped[character_id]
        drawn, face = draw()
        path = character.portrait_path()
        assert path is not None
        with Image.open(path) as shipped_image:
            difference = np.abs(
                np.asarray(drawn, np.int16) - np.asarray(shipped_image.convert("RGB"), np.int16)
            )
        assert difference.max() <= 2, character_id
        assert character.portrait.face_box == face.face_box()
        assert character.portrait.mouth_box == face.mouth_box()


def test_mediapipe_finds_the_face_inside_the_declared_box(shipped: dict[str, Character]) -> None:
    mediapipe = pytest.importorskip("mediapipe")
    for character in shipped.values():
        path = character.portrait_path()
        assert path is not None and character.portrait.face_box is not None
        pixels = np.asarray(Image.open(path).convert("RGB"))
        with mediapipe.solutions.face_mesh.FaceMesh(static_image_mode=True) as mesh:
            result = mesh.process(pixels)
        assert result.multi_face_landmarks, f"no face found in {path}"
        points = result.multi_face_landmarks[0].landmark
        center_x = np.mean([p.x for p in points]) * pixels.shape[1]
        center_y = np.mean([p.y for p in points]) * pixels.shape[0]
        x, y, w, h = character.portrait.face_box
        assert x < center_x < x + w and y < center_y < y + h


def test_shipped_voices_are_short_clips_with_distinct_pitch(
    shipped: dict[str, Character], media_script: ModuleType
) -> None:
    pitches = {}
    for character in shipped.values():
        path = character.voice_path()
        assert path is not None and path.stat().st_size < 500_000
        with wave.open(str(path)) as clip:
            assert (clip.getframerate(), clip.getnchannels(), clip.getsampwidth()) == (22050, 1, 2)
            duration = clip.getnframes() / clip.getframerate()
            samples = np.frombuffer(clip.readframes(clip.getnframes()), np.int16)
        assert 6.0 <= duration <= 10.0, (character.id, duration)
        assert np.abs(samples).max() > 10_000  # speech at a usable level, not silence
        pitches[character.id] = media_script.median_pitch(samples.astype(np.float32) / 32768)
    assert pitches["napoleon"] == pytest.approx(125, abs=12)
    assert pitches["einstein"] == pytest.approx(105, abs=12)


# --- the model --------------------------------------------------------------------------------


def test_render_resolves_char_and_user_in_any_case_and_legacy_forms(tmp_path: Path) -> None:
    character = load_character(write_character(tmp_path, "ada", MINIMAL_YAML))
    text = "{{char}} {{Char}} {{ CHAR }} <BOT> <bot> <CHAR> / {{user}} {{USER}} <USER> <user>"
    rendered = character.render(text, user="Grace")
    assert rendered == "Ada Lovelace " * 6 + "/" + " Grace" * 4
    assert character.render(character.greeting) == "Good day, User. I am Ada Lovelace."
    assert character.render("{{other}} stays") == "{{other}} stays"


def test_render_keeps_special_characters_in_names_literal(tmp_path: Path) -> None:
    character = load_character(write_character(tmp_path, "slash", MINIMAL_YAML))
    assert character.render("{{user}}!", user=r"C:\new\1") == "C:\\new\\1!"


def test_minimal_character_gets_defaults(tmp_path: Path) -> None:
    character = load_character(write_character(tmp_path, "ada", MINIMAL_YAML))
    assert character.id == "ada"
    assert character.voice.reference == "voice.wav" and character.voice.speed == 1.0
    assert character.portrait.face_box is None
    assert character.portrait_path() is None and character.voice_path() is None
    assert character.knowledge_documents() == {}
    assert character.alternate_greetings == [] and character.tags == []


def test_knowledge_documents_are_read_from_disk_each_time(tmp_path: Path) -> None:
    folder = write_character(tmp_path, "ada", MINIMAL_YAML)
    character = load_character(folder)
    (folder / "knowledge" / "notes").mkdir(parents=True)
    (folder / "knowledge" / "b.md").write_text("Bernoulli numbers.")
    (folder / "knowledge" / "notes" / "a.md").write_text("The Analytical Engine.")
    (folder / "knowledge" / "image.png").write_bytes(b"not knowledge")
    assert character.knowledge_documents() == {
        "knowledge/b.md": "Bernoulli numbers.",
        "knowledge/notes/a.md": "The Analytical Engine.",
    }
    (folder / "knowledge" / "b.md").write_text("Note G.")
    assert character.knowledge_documents()["knowledge/b.md"] == "Note G."


def test_to_yaml_round_trips(shipped: dict[str, Character], tmp_path: Path) -> None:
    original = shipped["napoleon"]
    folder = write_character(tmp_path, "copy", original.to_yaml())
    copy = load_character(folder)
    assert copy.model_dump() == original.model_dump()
    assert "folder" not in original.to_yaml() and "\nid:" not in original.to_yaml()


def test_character_set_get_names_the_known_characters(tmp_path: Path) -> None:
    write_character(tmp_path, "einstein", MINIMAL_YAML)
    write_character(tmp_path, "napoleon", MINIMAL_YAML)
    found = load_characters(tmp_path)
    assert found.get("napoleon").id == "napoleon"
    with pytest.raises(CharacterNotFound) as caught:
        found.get("napolean")
    assert str(caught.value) == "no character 'napolean'; known: einstein, napoleon"
    assert isinstance(caught.value, LookupError)


# --- broken folders ---------------------------------------------------------------------------

BROKEN = {
    "bad-yaml": (MINIMAL_YAML + "personality: [unclosed\nscenario: x\n", None, "line 5"),
    "no-greeting": ("name: X\ndescription: Y\n", "greeting", "missing required field"),
    "wrong-type": (MINIMAL_YAML + "voice:\n  speed: fast\n", "voice.speed", "valid number"),
    "bad-box": (
        MINIMAL_YAML + "portrait:\n  face_box: [1, 2, 3]\n",
        "portrait.face_box.3",
        "missing item 3",
    ),
    "blank-name": (MINIMAL_YAML.replace("Ada Lovelace", "'  '"), "name", "blank"),
    "a-list": ("- name: X\n", None, "expected a mapping"),
    "empty": ("", None, "found empty"),
}


@pytest.mark.parametrize("character_id", sorted(BROKEN))
def test_broken_character_names_file_and_field(tmp_path: Path, character_id: str) -> None:
    text, field, words = BROKEN[character_id]
    folder = write_character(tmp_path, character_id, text)
    with pytest.raises(CharacterError) as caught:
        load_character(folder)
    error = caught.value
    assert error.path == folder / "character.yaml"
    # The character and file are named; where the characters live on the server is not.
    assert str(error).startswith(f"{character_id}/character.yaml: ")
    assert str(tmp_path) not in str(error)
    assert error.field == field
    if field:
        assert f"'{field}'" in str(error)
    assert words in str(error)


def test_broken_folders_never_stop_the_others(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED / "einstein", tmp_path / "einstein")
    write_character(tmp_path, "ada", MINIMAL_YAML)
    for character_id, (text, _, _) in BROKEN.items():
        write_character(tmp_path, character_id, text)
    (tmp_path / "no-yaml").mkdir()
    (tmp_path / "Bad Name").mkdir()
    (tmp_path / ".import-in-progress").mkdir()  # work areas are not characters
    (tmp_path / "README.md").write_text("not a character")

    found = load_characters(tmp_path)

    assert sorted(found.characters) == ["ada", "einstein"]
    failed = {
        error.path.name if error.field == "id" else error.path.parent.name for error in found.errors
    }
    assert failed == {*BROKEN, "no-yaml", "Bad Name"}
    missing = next(error for error in found.errors if error.path.parent.name == "no-yaml")
    assert "missing character.yaml" in str(missing)


def test_unknown_fields_are_logged_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = MINIMAL_YAML + "mood: cheerful\nvoice:\n  pitch: 3\nid: other\n"
    with caplog.at_level(logging.WARNING, logger="chattr.characters.character_set"):
        character = load_character(write_character(tmp_path, "ada", text))
    assert character.id == "ada"  # the folder decides, not the file
    assert "unknown field 'mood'" in caplog.text
    assert "unknown field 'voice.pitch'" in caplog.text
    assert "ignoring 'id'" in caplog.text


def test_missing_directory_is_an_error_not_a_crash(tmp_path: Path) -> None:
    found = load_characters(tmp_path / "nowhere")
    assert found.characters == {}
    assert len(found.errors) == 1 and "does not exist" in str(found.errors[0])
