"""Cards as card people use them, end to end: `chattr import-card` (a subprocess), then the real
app through its API, reading what reached the LLM's prompt and what was sent to speech.

The cards are built here from SillyTavern's documented World Info rules; speech goes to a small
recording HTTP server standing in for vocalizr at its URL.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from gradio_client import Client

from chattr.testing.fake_llm import FakeLLMServer
from chattr.testing.threaded_server import ThreadedServer

from ...browsers import chromium, chromium_args
from ...conftest import REPO, StartApp

LORE = [
    {"keys": ["dragon"], "content": "LORE-DRAGON: {{char}} once fought a dragon.", "id": 1},
    {"keys": ["dragon"], "content": "LORE-DISABLED", "enabled": False, "id": 2},
    {"keys": [], "content": "LORE-CONSTANT", "constant": True, "position": "after_char", "id": 3},
    {
        "keys": ["castle"],
        "secondary_keys": ["king"],
        "selective": True,
        "content": "LORE-CASTLE-KING",
        "extensions": {"selectiveLogic": 0},
        "id": 4,
    },
    {
        "keys": ["castle"],
        "secondary_keys": ["queen"],
        "selective": True,
        "content": "LORE-CASTLE-NO-QUEEN",
        "extensions": {"selectiveLogic": 2},
        "id": 5,
    },
    {
        "keys": ["storm"],
        "content": "LORE-STORM-DEPTH",
        "extensions": {"position": 4, "depth": 0, "role": 1},
        "id": 6,
    },
    {"keys": ["kingdom"], "content": "LORE-KINGDOM: the realm fears the dragon.", "id": 7},
    {"keys": ["/sky-?ships?/i"], "content": "LORE-REGEX", "id": 8},
    {
        "keys": ["ghost"],
        "content": "LORE-GHOST-NEVER",
        "extensions": {"probability": 0, "useProbability": True},
        "id": 9,
    },
    {"keys": ["nothing-matches-this"], "content": "@@activate\nLORE-DECORATOR", "id": 10},
    {"keys": ["cat"], "content": "LORE-CAT", "id": 11},
    {
        "keys": ["harbour"],
        "content": "LORE-VECTOR: the harbour code is 4412.",
        "extensions": {"vectorized": True},
        "id": 12,
    },
]

WREN: dict[str, Any] = {
    "spec": "chara_card_v3",
    "spec_version": "3.0",
    "data": {
        "name": "Captain Wren",
        "description": "WREN-DESCRIPTION: {{char}} commands the sky-barge Heron.",
        "personality": "gruff",
        "scenario": "WREN-SCENARIO: a night watch.",
        "first_mes": "Welcome aboard.",
        "alternate_greetings": [
            "*The storm howls.* Hold fast, {{user}}!",
            "The castle gates stand open.",
        ],
        "mes_example": "WREN-EXAMPLES",
        "character_book": {"name": "Heron lore", "entries": LORE},
    },
}

ROLEPLAY_REPLY = (
    '*She draws her sword and squints.* "Stand back, all of you!" (She whispers to the mate.) '
    "We sail at dawn, and nothing will stop us."
)


def import_card(card: dict[str, Any], folder: Path, name: str) -> subprocess.CompletedProcess[str]:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(card), encoding="utf-8")
    env = {**os.environ, "CHATTR_CHARACTERS_DIR": str(folder / "characters")}
    return subprocess.run(
        [sys.executable, "-m", "chattr", "import-card", str(path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def card_characters(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Characters imported with `chattr import-card`: Wren, and variants of her for speech."""
    folder = tmp_path_factory.mktemp("cards")
    cards = (
        ("wren", WREN),
        ("quotes", _renamed("Quiet Wren")),
        ("li", _li_bai()),
        ("broken", _renamed("Broken Wren")),
    )
    for name, card in cards:
        done = import_card(card, folder, name)
        assert done.returncode == 0, done.stderr
        assert name == "li" or f"lorebook: {len(LORE)} World Info entries" in done.stdout
    characters = folder / "characters"
    _set_voice(characters / "quiet-wren", speak="quotes_only")
    _set_voice(characters / "li-bai", language="zh-cn")
    (characters / "broken-wren" / "lorebook.json").write_text('{"entries": [', encoding="utf-8")
    return characters


def _renamed(name: str) -> dict[str, Any]:
    return {**WREN, "data": {**WREN["data"], "name": name}}


def _li_bai() -> dict[str, Any]:
    return {"spec": "chara_card_v2", "data": {"name": "Li Bai", "first_mes": "你好。"}}


def _set_voice(folder: Path, **voice: str) -> None:
    path = folder / "character.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    language = voice.pop("language", None)
    if language:
        data["language"] = language
        data["voice"]["language"] = language
    data["voice"].update(voice)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def silent_wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0\0" * 1600)
    return buffer.getvalue()


class RecordingVocalizr:
    """Stands in for vocalizr at its URL: records every speech request, answers with silence."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        app = FastAPI()
        audio = silent_wav()

        @app.post("/v1/speech")
        async def speech(request: Request) -> JSONResponse:
            body = await request.json()
            with self._lock:
                self.requests.append(body)
                number = len(self.requests)
            return JSONResponse(
                {
                    "id": str(number),
                    "url": f"{self.server.url}/files/{number}.wav",
                    "duration_s": 0.1,
                    "sample_rate": 16000,
                    "engine": "recording",
                }
            )

        @app.get("/files/{name}")
        async def files(name: str) -> Response:
            return Response(audio, media_type="audio/wav")

        @app.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

        self.server = ThreadedServer(app, lifespan="off")

    @property
    def texts(self) -> list[str]:
        with self._lock:
            return [str(r["text"]) for r in self.requests]


@pytest.fixture
def vocalizr() -> Iterator[RecordingVocalizr]:
    recorder = RecordingVocalizr()
    recorder.server.start()
    yield recorder
    recorder.server.stop()


def messages(request: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(m["role"]), str(m.get("content", ""))) for m in request["messages"]]


def system_prompt(request: dict[str, Any]) -> str:
    return messages(request)[0][1]


def everything(request: dict[str, Any]) -> str:
    return "\n".join(content for _, content in messages(request))


def chat(client: Client, message: str, session: str = "", **extra: Any) -> dict[str, Any]:
    result = client.predict(
        message=message,
        character=extra.pop("character", "captain-wren"),
        session_id=session,
        media=extra.pop("media", False),
        api_name="/chat",
        **extra,
    )
    assert isinstance(result, dict)
    return result


# --- import -----------------------------------------------------------------------------------


def test_import_card_writes_lorebook_json_and_only_vectorized_knowledge(
    card_characters: Path,
) -> None:
    folder = card_characters / "captain-wren"
    stored = json.loads((folder / "lorebook.json").read_text(encoding="utf-8"))
    assert stored["format"] == "chattr-lorebook/1" and len(stored["entries"]) == len(LORE)
    by_uid = {entry["uid"]: entry for entry in stored["entries"]}
    assert by_uid[6]["position"] == "at_depth" and by_uid[6]["role"] == "user"
    assert by_uid[10]["decorators"] == ["@@activate"] and by_uid[10]["content"] == "LORE-DECORATOR"
    knowledge = (folder / "knowledge" / "lorebook.md").read_text(encoding="utf-8")
    assert "LORE-VECTOR" in knowledge and "LORE-DRAGON" not in knowledge


# --- World Info in the prompt ------------------------------------------------------------------


@pytest.fixture
def wren_app(start_app: StartApp, card_characters: Path) -> Client:
    return start_app(characters_dir=card_characters).client()


def test_keys_activate_entries_by_the_rules(wren_app: Client, llm: FakeLLMServer) -> None:
    llm.script("Aye.")
    chat(wren_app, "Tell me of the dragon and the castle of the king. I concatenate.")
    prompt = system_prompt(llm.requests[-1])
    for present in ("LORE-DRAGON", "LORE-CONSTANT", "LORE-CASTLE-KING", "LORE-CASTLE-NO-QUEEN"):
        assert present in prompt, present
    assert "LORE-DECORATOR" in prompt  # @@activate
    assert "Captain Wren once fought a dragon." in prompt  # macros resolved
    text = everything(llm.requests[-1])
    for absent in ("LORE-DISABLED", "LORE-REGEX", "LORE-GHOST", "LORE-CAT", "LORE-STORM"):
        assert absent not in text, absent
    # before the character definition, and after it (before the examples)
    assert prompt.index("LORE-DRAGON") < prompt.index("WREN-DESCRIPTION")
    assert prompt.index("WREN-SCENARIO") < prompt.index("LORE-CONSTANT")
    assert prompt.index("LORE-CONSTANT") < prompt.index("WREN-EXAMPLES")


def test_secondary_keys_regex_and_recursion(wren_app: Client, llm: FakeLLMServer) -> None:
    llm.script("Aye.")
    chat(wren_app, "The castle of the queen, and the kingdom's SKYSHIPS.")
    prompt = system_prompt(llm.requests[-1])
    assert "LORE-CASTLE-KING" not in prompt and "LORE-CASTLE-NO-QUEEN" not in prompt
    assert "LORE-REGEX" in prompt
    # "kingdom" activates an entry whose content names the dragon: recursion brings that in
    assert "LORE-KINGDOM" in prompt and "LORE-DRAGON" in prompt


def test_keys_are_looked_for_in_the_last_two_messages(wren_app: Client, llm: FakeLLMServer) -> None:
    llm.script("Aye.", "Hm.", "Right.")
    first = chat(wren_app, "A dragon!")
    session = first["session_id"]
    chat(wren_app, "Where?", session)
    assert "LORE-DRAGON" in system_prompt(llm.requests[0])
    # "A dragon!" is three messages back now ("A dragon!", "Aye.", "Where?")
    assert "LORE-DRAGON" not in system_prompt(llm.requests[1])
    chat(wren_app, "The dragon again.", session)
    assert "LORE-DRAGON" in system_prompt(llm.requests[2])


def test_an_entry_at_depth_zero_follows_the_message_as_its_role(
    wren_app: Client, llm: FakeLLMServer
) -> None:
    llm.script("Aye.")
    chat(wren_app, "A storm is coming.")
    sent = messages(llm.requests[-1])
    assert sent[-2:] == [("user", "A storm is coming."), ("user", "LORE-STORM-DEPTH")]
    assert "LORE-STORM-DEPTH" not in sent[0][1]


def test_a_broken_lorebook_is_an_error_on_the_turn_not_a_lost_reply(
    wren_app: Client, llm: FakeLLMServer, card_characters: Path
) -> None:
    llm.script("Still here.")
    result = chat(wren_app, "A dragon!", character="broken-wren")
    assert result["text"] == "Still here."
    [error] = [e for e in result["errors"] if e["service"] == "lorebook"]
    assert error["detail"].startswith("lorebook.json: not valid JSON (line 1")
    assert str(card_characters) not in error["detail"]
    assert "LORE-DRAGON" not in everything(llm.requests[-1])


# --- greetings --------------------------------------------------------------------------------


def test_an_alternate_greeting_opens_the_conversation(wren_app: Client, llm: FakeLLMServer) -> None:
    listed = {c["id"]: c for c in wren_app.predict(api_name="/characters")}
    assert listed["captain-wren"]["greetings"] == [
        "Welcome aboard.",
        "*The storm howls.* Hold fast, User!",
        "The castle gates stand open.",
    ]
    llm.script("Aye.", "Hm.")
    first = chat(wren_app, "What do we do?", greeting=1)
    sent = messages(llm.requests[-1])
    assert ("assistant", "*The storm howls.* Hold fast, User!") in sent
    assert ("assistant", "Welcome aboard.") not in sent
    # World Info scans the greeting: "storm" is in it, not in the message
    assert ("user", "LORE-STORM-DEPTH") in sent
    # the greeting stays part of the conversation on the next turn, whatever is passed then
    chat(wren_app, "And then?", first["session_id"], greeting=2)
    later = messages(llm.requests[-1])
    start = later.index(("assistant", "*The storm howls.* Hold fast, User!"))
    assert later[start : start + 3] == [
        ("assistant", "*The storm howls.* Hold fast, User!"),
        ("user", "What do we do?"),
        ("assistant", "Aye."),
    ]


def test_the_main_greeting_by_default_and_a_bad_index_is_refused(
    wren_app: Client, llm: FakeLLMServer
) -> None:
    llm.script("Aye.")
    chat(wren_app, "Hello.")
    assert ("assistant", "Welcome aboard.") in messages(llm.requests[-1])
    with pytest.raises(Exception, match="no greeting 3: Captain Wren has greetings 0"):
        chat(wren_app, "Hello.", greeting=3)


# --- speech -----------------------------------------------------------------------------------


def test_actions_and_stage_directions_are_shown_not_spoken(
    start_app: StartApp, card_characters: Path, llm: FakeLLMServer, vocalizr: RecordingVocalizr
) -> None:
    client = start_app(vocalizr_url=vocalizr.server.url, characters_dir=card_characters).client()
    llm.script(ROLEPLAY_REPLY)
    result = chat(client, "Orders?", media=True)
    assert result["text"] == ROLEPLAY_REPLY  # the page and the API keep all of it
    assert not result["errors"], result["errors"]
    spoken = " ".join(vocalizr.texts)
    assert "Stand back, all of you!" in spoken and "nothing will stop us" in spoken
    assert "sword" not in spoken and "whispers" not in spoken and "*" not in spoken
    assert sorted(s["text"] for s in result["segments"]) == sorted(vocalizr.texts)


def test_quotes_only_speaks_only_the_dialogue(
    start_app: StartApp, card_characters: Path, llm: FakeLLMServer, vocalizr: RecordingVocalizr
) -> None:
    client = start_app(vocalizr_url=vocalizr.server.url, characters_dir=card_characters).client()
    llm.script(ROLEPLAY_REPLY)
    result = chat(client, "Orders?", character="quiet-wren", media=True)
    assert result["text"] == ROLEPLAY_REPLY
    assert vocalizr.texts == ['"Stand back, all of you!"']


def test_a_chinese_reply_is_spoken_sentence_by_sentence(
    start_app: StartApp, card_characters: Path, llm: FakeLLMServer, vocalizr: RecordingVocalizr
) -> None:
    client = start_app(vocalizr_url=vocalizr.server.url, characters_dir=card_characters).client()
    # The fake LLM streams one whitespace-separated token at a time.
    llm.script("我的名字叫李白， 是唐朝的诗人。 今天月色很美！ *举杯* 你想听我的诗吗？")
    result = chat(client, "你是谁？", character="li-bai", media=True)
    assert sorted(vocalizr.texts) == sorted(
        [
            "我的名字叫李白，",  # the first clause goes to speech early
            "是唐朝的诗人。",
            "今天月色很美！",
            "你想听我的诗吗？",
        ]
    )
    assert result["segments"][0]["text"] == "我的名字叫李白，"
    assert {r["language"] for r in vocalizr.requests} == {"zh-cn"}
    assert "*举杯*" in result["text"]


# --- the page ---------------------------------------------------------------------------------


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    """A headless Chromium page (Debian's chromium, a fresh profile)."""
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=executable,
            headless=True,
            args=chromium_args(),
        )
        page = context.new_page()
        page.set_viewport_size({"width": 1280, "height": 900})
        yield page
        context.close()


@pytest.mark.slow
@pytest.mark.browser
def test_page_greeting_choice_regenerate_and_undo_keep_world_info(
    page: Any, start_app: StartApp, card_characters: Path, llm: FakeLLMServer
) -> None:
    app = start_app(characters_dir=card_characters)
    page.goto(app.url, wait_until="load")
    chat_box = page.locator("#chattr-chat")
    page.get_by_label("Character").first.click()
    page.get_by_role("option", name="Captain Wren").click()
    chat_box.get_by_text("Welcome aboard.").wait_for(timeout=15_000)

    # Choose the first alternate greeting: the conversation opens with it.
    page.locator("#chattr-greeting").get_by_label("Greeting").click()
    page.get_by_role("option", name=re.compile("Hold fast")).click()
    chat_box.get_by_text("Hold fast, User!").wait_for(timeout=15_000)
    assert chat_box.get_by_text("Welcome aboard.").count() == 0

    box = page.get_by_label("Your message")
    llm.script("First answer.")
    box.fill("What now?")
    box.press("Enter")
    chat_box.get_by_text("First answer.").wait_for(timeout=30_000)
    sent = messages(llm.requests[-1])
    assert ("assistant", "*The storm howls.* Hold fast, User!") in sent
    assert ("user", "LORE-STORM-DEPTH") in sent  # World Info scanned the greeting

    # Regenerate: the same prompt, World Info and greeting included, without the old answer.
    llm.script("Second answer.")
    page.get_by_role("button", name="Regenerate").click()
    chat_box.get_by_text("Second answer.").wait_for(timeout=30_000)
    again = messages(llm.requests[-1])
    assert again[0] == sent[0]  # the same system prompt
    # the same chat and World Info (long-term memory may recall the undone turn as context)
    assert [m for m in again if m[0] != "system"] == [m for m in sent if m[0] != "system"]
    assert ("assistant", "First answer.") not in again

    # Undo: the turn goes, the greeting stays, in the page and in the conversation.
    page.get_by_role("button", name="Undo last turn").click()
    page.wait_for_function(
        "() => !document.querySelector('#chattr-chat').innerText.includes('Second answer')"
    )
    assert chat_box.get_by_text("Hold fast, User!").count() == 1
    llm.script("Third answer.")
    box.fill("Anything else?")
    box.press("Enter")
    chat_box.get_by_text("Third answer.").wait_for(timeout=30_000)
    last = messages(llm.requests[-1])
    assert ("assistant", "*The storm howls.* Hold fast, User!") in last
    assert ("user", "LORE-STORM-DEPTH") in last and ("user", "What now?") not in last
