"""What an API caller can send to the real `chat` endpoint that the page never would: lone
surrogates and arguments of the wrong type get a clear error, never an internal one."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from gradio_client.exceptions import AppError

from chattr.testing.fake_llm import FakeLLMServer

from ..conftest import StartApp

LONE = "\ud800"

BAD_ARGUMENTS: list[tuple[tuple[Any, ...], str]] = [
    ((f"Hello {LONE} there", "curie", "", False), "'message' is not valid text: character 7"),
    (("Hello", f"cur{LONE}ie", "", False), "'character' is not valid text"),
    (("Hello", "curie", f"s{LONE}", False), "'session_id' is not valid text"),
    ((42, "curie", "", False), "'message' must be a string, not int"),
    ((["Hello"], "curie", "", False), "'message' must be a string, not list"),
    ((None, "curie", "", False), "'message' is missing"),
    (("Hello", 7, "", False), "'character' must be a string, not int"),
    (("Hello", ["curie"], "", False), "'character' must be a string, not list"),
    (("Hello", None, "", False), "'character' is missing"),
    (("Hello", "curie", 12345, False), "'session_id' must be a string, not int"),
    (("Hello", "curie", ["abc"], False), "'session_id' must be a string, not list"),
    (("Hello", "curie", "", "yes"), "'media' must be true or false, not str"),
    (("Hello", "curie", "", [1]), "'media' must be true or false, not list"),
]


def call_raw(url: str, api_name: str, arguments: tuple[Any, ...]) -> tuple[str, str]:
    """The endpoint called over plain HTTP (gradio_client refuses to send a lone surrogate;
    JSON's \\ud800 escape carries it): the last event of the stream, and its data."""
    # `chat` takes six inputs over plain HTTP (audio and greeting after these four): pad them.
    values = list(arguments) + [None] * (6 - len(arguments))
    body = json.dumps({"data": values}).encode()  # ASCII, surrogates escaped
    with httpx.Client(base_url=url, timeout=60) as http:
        posted = http.post(
            f"/gradio_api/call/{api_name}",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert posted.status_code == 200, posted.text
        event_id = posted.json()["event_id"]
        event, data = "", ""
        with http.stream("GET", f"/gradio_api/call/{api_name}/{event_id}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line.removeprefix("event:").strip()
                elif line.startswith("data:"):
                    data = line.removeprefix("data:").strip()
        return event, data


def test_bad_arguments_to_chat_get_a_clear_error(start_app: StartApp, llm: FakeLLMServer) -> None:
    app = start_app()
    client = app.client()
    for arguments, expected in BAD_ARGUMENTS:
        if any(isinstance(a, str) and LONE in a for a in arguments):
            event, data = call_raw(app.url, "chat", arguments)
            assert event == "error" and expected in data, (arguments, event, data)
            continue
        with pytest.raises(AppError) as caught:
            client.predict(*arguments, api_name="/chat")
        assert expected in str(caught.value), (arguments, str(caught.value))
    assert llm.requests == []  # refused before any work
    # The app is unharmed: a good call right after works.
    good = client.predict("Hello there", "curie", "", False, api_name="/chat")
    assert good["text"] and good["errors"] == []
