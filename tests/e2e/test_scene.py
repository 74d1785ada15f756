"""A scene through the whole stack, real processes: fake LLM, chattr (Redis memory, Qdrant Edge
knowledge), vocalizr and visualizr; driven by gradio_client as a script would."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from gradio_client.exceptions import AppError

from chattr.media.local_stack import LocalStack
from chattr.testing.fake_llm import FakeLLMServer

from ..conftest import CURIE_FACT, StartApp

pytestmark = pytest.mark.slow

CURIE_LINE = "Box 7741 holds my notebooks. Lead keeps the world safe from them."
NAPOLEON_LINE = "Lead boxes! At Toulon I would have filled them with powder."


def system_text(request: dict[str, Any]) -> str:
    return "\n".join(m["content"] for m in request["messages"] if m["role"] == "system")


def test_a_scene_answers_in_each_speakers_words_voice_and_face_and_export_and_forget_cover_it(
    start_app: StartApp, llm: FakeLLMServer, media_stack: LocalStack
) -> None:
    assert media_stack.vocalizr and media_stack.visualizr
    app = start_app(media_stack.vocalizr.url, media_stack.visualizr.url)
    client = app.client()
    llm.script(CURIE_LINE, NAPOLEON_LINE)
    job = client.submit(
        "Marie, where do you keep your notebooks? Napoleon, what do you say?",
        ["napoleon", "curie"],
        "",
        True,
        "natural",
        api_name="/scene",
    )
    streamed = list(job)
    result = job.result()
    assert len(streamed) > 2  # it streams as it grows

    assert [g["character"] for g in result["greetings"]] == ["napoleon", "curie"]
    assert [(r["character"], r["text"]) for r in result["replies"]] == [
        ("curie", CURIE_LINE),
        ("napoleon", NAPOLEON_LINE),
    ]
    # Curie has no portrait: her face fails, her words and voice stand, Napoleon's media too.
    curie, napoleon = result["replies"]
    assert [e["service"] for e in result["errors"]] == ["curie: visualizr"]
    assert "no usable portrait" in curie["errors"][0]["detail"]
    assert curie["audio_url"] and curie["video_url"] is None
    assert napoleon["errors"] == [] and napoleon["segments"]
    for url in (curie["audio_url"], napoleon["audio_url"], napoleon["video_url"]):
        assert httpx.get(url).status_code == 200
    # Each reply is its speaker's: Curie's knowledge reached her prompt only; Napoleon heard her.
    curie_asked, napoleon_asked = llm.requests[-2:]
    assert CURIE_FACT in system_text(curie_asked)
    assert CURIE_FACT not in system_text(napoleon_asked)
    assert {"role": "user", "content": f"Marie Curie: {CURIE_LINE}"} in napoleon_asked["messages"]

    session = result["session_id"]
    exported = client.predict(session, api_name="/export")
    lines = [(t["character"], t["user"], t["assistant"]) for t in exported["turns"]]
    assert lines[-2:] == [
        (
            "curie",
            "Marie, where do you keep your notebooks? Napoleon, what do you say?",
            CURIE_LINE,
        ),
        ("napoleon", "", NAPOLEON_LINE),
    ]
    assert [t["character"] for t in exported["turns"][:2]] == ["napoleon", "curie"]  # greetings

    forgotten = client.predict(session, api_name="/forget")
    assert forgotten["deleted"]["turns"] == 4  # two greetings, two replies
    assert not any("memory" in line for line in forgotten["not_deleted"])
    assert client.predict(session, api_name="/export")["turns"] == []
    assert httpx.get(result["replies"][0]["audio_url"]).status_code == 404


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ((["napoleon"],), "a scene needs two or more"),
        ((["napoleon", "napoleon"],), "more than once"),
        ((["napoleon", "einstein"], "", True, "natural", "curie"), "'speaker' 'curie' is not"),
        ((["napoleon", "einstein"], "", True, "shout"), "'strategy' must be one of"),
    ],
)
def test_a_bad_scene_request_is_refused_naming_the_argument(
    start_app: StartApp, arguments: tuple[Any, ...], named: str
) -> None:
    client = start_app().client()
    with pytest.raises(AppError, match=named):
        client.predict("Hello.", *arguments, api_name="/scene")
