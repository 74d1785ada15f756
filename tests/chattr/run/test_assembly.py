"""The app launched on a free port and driven with gradio_client, as a script would."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client

from chattr.media.local_stack import free_port
from chattr.media.store import MediaStore
from chattr.settings import Settings
from chattr.testing.fake_llm import FakeLLMServer

from ...conftest import CURIE_FACT, REPO, StartApp

EXAMPLE_ENV = REPO / ".env.example"


def prompt_text(request: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content", "")) for m in request["messages"])


def test_characters_endpoint_lists_ids_names_and_greetings(start_app: StartApp) -> None:
    app = start_app()
    listed = app.client().predict(api_name="/characters")
    by_id = {c["id"]: c for c in listed}
    assert {"napoleon", "einstein", "curie"} <= set(by_id)
    assert by_id["curie"]["name"] == "Marie Curie"
    assert by_id["curie"]["greeting"] == "Good evening. Mind the glowing vials."


def test_second_answer_depends_on_memory_of_the_first(
    start_app: StartApp, llm: FakeLLMServer
) -> None:
    client = start_app().client()
    first = client.predict("Hello! My name is Ada.", "curie", "", False, api_name="/chat")
    session = first["session_id"]
    assert session and first["character"] == "curie" and first["text"]
    second = client.predict("What is my name?", "curie", session, False, api_name="/chat")
    assert "Ada" in second["text"]
    assert second["session_id"] == session
    # Another session never sees Ada's memory.
    other = client.predict("What is my name?", "curie", uuid.uuid4().hex, False, api_name="/chat")
    assert "Ada" not in other["text"]
    # The second prompt carried the first turn, the third did not.
    assert "My name is Ada" in prompt_text(llm.requests[1])
    assert "My name is Ada" not in prompt_text(llm.requests[2])


def test_a_fact_only_in_the_knowledge_files_reaches_the_prompt(
    start_app: StartApp, llm: FakeLLMServer
) -> None:
    client = start_app().client()
    result = client.predict(
        "Where did you keep your notebooks?", "curie", "", False, api_name="/chat"
    )
    assert result["text"]
    prompt = prompt_text(llm.requests[-1])
    assert CURIE_FACT in prompt
    # the persona's macros were resolved
    assert "You are Marie Curie" in prompt and "{{char}}" not in prompt
    # ... and it is not leaked to another character
    client.predict("Where did you keep your notebooks?", "napoleon", "", False, api_name="/chat")
    assert "7741" not in prompt_text(llm.requests[-1])


def test_older_turns_are_recalled_from_long_term_memory(
    start_app: StartApp, llm: FakeLLMServer
) -> None:
    client = start_app(memory_turns=1).client()
    session = client.predict(
        "My favourite element is polonium, named after Poland.",
        "curie",
        "",
        False,
        api_name="/chat",
    )["session_id"]
    client.predict(
        "Tell me about the weather in Paris today.", "curie", session, False, api_name="/chat"
    )
    client.predict("Which element is my favourite?", "curie", session, False, api_name="/chat")
    prompt = prompt_text(llm.requests[-1])
    # Not among the recent turns any more (memory_turns=1), but recalled as relevant.
    assert "polonium" in prompt


@pytest.mark.parametrize(
    ("message", "character", "expected"),
    [
        ("", "curie", "empty"),
        ("   ", "curie", "empty"),
        ("x" * 5000, "curie", "limit is 2000"),
        ("Hello", "napolean", "no character 'napolean'; known:"),
    ],
)
def test_bad_input_gets_a_clear_error(
    start_app: StartApp, llm: FakeLLMServer, message: str, character: str, expected: str
) -> None:
    client = start_app().client()
    with pytest.raises(Exception, match=expected):
        client.predict(message, character, "", False, api_name="/chat")
    assert llm.requests == []


def test_without_an_llm_the_page_opens_and_says_what_to_set(start_app: StartApp) -> None:
    import httpx

    app = start_app(llm_base_url=None)
    assert httpx.get(app.url + "/").status_code == 200
    assert httpx.get(app.url + "/healthz").json()["llm"] is False
    with pytest.raises(Exception, match="GROQ_API_KEY"):
        app.client().predict("Hello", "curie", "", False, api_name="/chat")


def test_empty_settings_are_unset_so_the_page_says_what_to_set(
    start_app: StartApp,
    llm: FakeLLMServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `.env.example` copied to `.env` and not filled in (`GROQ_API_KEY=`), and an empty variable.
    (tmp_path / ".env").write_text(EXAMPLE_ENV.read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHATTR_LLM_BASE_URL", "")
    monkeypatch.setenv("CHATTR_REDIS_URL", "")
    read = Settings()
    assert (read.groq_api_key, read.llm_base_url, read.redis_url) == (None, None, None)
    assert read.vocalizr_api_key is None  # `VOCALIZR_API_KEY=`, which chattr reads too
    app = start_app(llm_base_url=read.llm_base_url, groq_api_key=read.groq_api_key)
    assert httpx.get(app.url + "/healthz").json()["llm"] is False
    with pytest.raises(Exception, match=r"No language model is configured\. Set GROQ_API_KEY"):
        app.client().predict("Hello", "curie", "", False, api_name="/chat")
    assert llm.requests == []


def test_llm_failure_is_reported_not_hidden(start_app: StartApp, llm: FakeLLMServer) -> None:
    client = start_app().client()
    llm.script(500, 500, 500)
    with pytest.raises(Exception, match="language model failed"):
        client.predict("Hello there", "curie", "", False, api_name="/chat")


def test_redis_going_down_mid_session_degrades_without_crashing(
    start_app: StartApp, tmp_path: Path
) -> None:
    port = free_port()
    redis_proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        client = start_app(redis_url=f"redis://127.0.0.1:{port}/0").client()
        first = client.predict("My name is Ada.", "curie", "", False, api_name="/chat")
        assert first["errors"] == []
        redis_proc.terminate()
        redis_proc.wait(10)
        second = client.predict(
            "What is my name?", "curie", first["session_id"], False, api_name="/chat"
        )
        assert second["text"]  # still answered
        assert any(e["service"] == "memory" for e in second["errors"])
    finally:
        redis_proc.kill()


def _wait_for_port(port: int) -> None:
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def test_client_from_url_works(start_app: StartApp) -> None:
    app = start_app()
    assert Client(app.url, verbose=False).view_api(return_format="dict")[
        "named_endpoints"
    ].keys() >= {
        "/chat",
        "/characters",
    }


def test_use_via_api_shows_named_parameters(start_app: StartApp) -> None:
    api = start_app().client().view_api(return_format="dict", print_info=False)
    chat = api["named_endpoints"]["/chat"]
    names = [p["parameter_name"] for p in chat["parameters"]]
    assert names == ["message", "character", "session_id", "media", "audio", "greeting"]
    assert "/characters" in api["named_endpoints"]
    # Only the API is public: the page's own events are not listed as endpoints.
    assert set(api["named_endpoints"]) == {
        "/chat",
        "/scene",
        "/characters",
        "/export",
        "/forget",
        "/undo",
    }


def test_joined_media_past_retention_is_deleted_and_no_longer_served(
    start_app: StartApp,
) -> None:
    app = start_app(media_retention_s=1.0)
    media_dir = app.settings.data_dir / "media"
    name = uuid.uuid4().hex
    joined = media_dir / f"{name}.mp4"
    piece = media_dir / f".{name}-0.mp4"  # left by a crash mid-join
    keep = media_dir / "notes.txt"  # not ours: never touched
    for path in (joined, piece, keep):
        path.write_bytes(b"x")
    assert httpx.get(f"{app.url}/media/{name}.mp4").status_code == 200
    deadline = time.monotonic() + 10
    while joined.exists() or piece.exists():
        assert time.monotonic() < deadline, "expired media still there"
        time.sleep(0.1)
    assert httpx.get(f"{app.url}/media/{name}.mp4").status_code == 404
    assert keep.exists()
    keep.unlink()


def test_purge_keeps_fresh_media(tmp_path: Path) -> None:
    fresh = tmp_path / f"{uuid.uuid4().hex}.wav"
    fresh.write_bytes(b"x")
    assert MediaStore(tmp_path).purge(older_than_s=60) == 0
    assert fresh.exists()
