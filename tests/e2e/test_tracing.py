"""One turn, one trace: chattr and the services it starts export spans over OTLP/HTTP to a
receiver the test runs, joined by W3C `traceparent`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client

from chatacter_common.service.jobs import STOPPED_EVENT
from chattr.media.local_stack import free_port
from chattr.testing.fake_llm import FakeLLMServer

from ..otlp_receiver import ReceivedSpan, Receiver, otlp_receiver

pytestmark = pytest.mark.slow

REPLY = "The guns were dragged over the pass. We came down into Italy by spring."
Chattr = Callable[..., str]  # environment variables -> chattr's URL, serving


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as running:
        yield running


@pytest.fixture
def chattr(
    tmp_path: Path, characters_dir: Path, llm: FakeLLMServer, receiver: Receiver
) -> Iterator[Chattr]:
    """`python -m chattr` with tracing on, pointed at the receiver; stopped after the test."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> str:
        port = free_port()
        environment = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("CHATTR_", "VOCALIZR_", "VISUALIZR_", "OTEL_"))
        }
        environment.update(
            CHATTR_PORT=str(port),
            CHATTR_LLM_BASE_URL=llm.url,
            CHATTR_DATA_DIR=str(tmp_path / f"chattr-{port}"),
            CHATTR_CHARACTERS_DIR=str(characters_dir),
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
            OTEL_BSP_SCHEDULE_DELAY="100",  # ms: spans reach the receiver soon after they end
            **env,
        )
        log = (tmp_path / f"chattr-{port}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "chattr"], env=environment, stdout=log, stderr=log
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300  # importing gradio takes minutes on a busy machine
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / f"chattr-{port}.log").read_text()[-3000:]
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("chattr did not start")

    yield start
    for process in processes:
        process.terminate()
        process.wait(60)


def chat(url: str, session_id: str) -> dict[str, Any]:
    result = Client(url, verbose=False).predict(
        "Tell me about the Alps.", "napoleon", session_id, True, api_name="/chat"
    )
    assert isinstance(result, dict)
    return result


def turn_spans(spans: list[ReceivedSpan], session_id: str) -> list[ReceivedSpan]:
    """The spans of the trace whose root is the turn of `session_id`."""
    roots = [
        s
        for s in spans
        if s.name == "chat turn" and s.attributes.get("chattr.conversation.id") == session_id
    ]
    if not roots:
        return []
    return [s for s in spans if s.trace_id == roots[0].trace_id]


def test_one_turn_is_one_trace_across_the_three_programs(
    chattr: Chattr, llm: FakeLLMServer, receiver: Receiver
) -> None:
    url = chattr()
    llm.script(REPLY)
    # The services chattr starts load their engines meanwhile: a turn before they are up has
    # no media (its errors say "still starting"); the turn asked once they are is the one read.
    deadline = time.monotonic() + 240
    attempt = 0
    while True:
        attempt += 1
        session_id = f"traced-{attempt}"
        result = chat(url, session_id)
        starting = [e for e in result["errors"] if "still starting" in e["detail"]]
        if not starting:
            break
        assert time.monotonic() < deadline, result["errors"]
        time.sleep(1)
    assert result["errors"] == [] and result["video_url"], result

    sentences = len(result["segments"])

    def complete(spans: list[ReceivedSpan]) -> bool:
        # Each program exports in its own batches: wait until every one has sent its part.
        names = [s.name for s in turn_spans(spans, session_id)]
        wanted = ("POST /v1/speech", "encoding", "POST /v1/videos", "render and encode")
        return "join" in names and all(names.count(name) >= sentences for name in wanted)

    assert receiver.wait_for(complete, 30), sorted({(s.program, s.name) for s in receiver.spans})
    spans = turn_spans(receiver.spans, session_id)
    by_id = {s.span_id: s for s in spans}

    def parent(span: ReceivedSpan) -> ReceivedSpan:
        return by_id[span.parent_id]

    def below(request: ReceivedSpan) -> set[str]:
        """The names of the spans under a request (FastAPI puts its endpoint span between)."""
        names, ids = set(), {request.span_id}
        for _ in range(4):
            found = [s for s in spans if s.parent_id in ids]
            ids |= {s.span_id for s in found}
            names |= {s.name for s in found}
        return names

    (root,) = [s for s in spans if s.parent_id == ""]
    assert root.name == "chat turn" and root.program == "chattr"
    assert root.attributes["chattr.outcome"] == "done"
    assert "chattr.message" not in root.attributes  # no words unless CHATTR_TRACE_TEXT says so
    for name in ("memory", "retrieval", "llm", "memory write", "join"):
        (step,) = [s for s in spans if s.name == name]
        assert parent(step) is root, name
    (llm_span,) = [s for s in spans if s.name == "llm"]
    assert "first token" in llm_span.events
    assert float(str(llm_span.attributes["llm.time_to_first_token_s"])) > 0

    speech = [s for s in spans if s.name == "speech"]
    videos = [s for s in spans if s.name == "video"]
    assert len(speech) == len(videos) == sentences >= 2  # one per sentence
    assert all(parent(s) is root for s in speech + videos)
    # Each service's request span (FastAPI's own) is a child of chattr's span for that call.
    requests = {
        s.span_id: s for s in spans if s.program in ("vocalizr", "visualizr") and s.parent_id
    }
    speech_requests = [s for s in requests.values() if s.name == "POST /v1/speech"]
    video_requests = [s for s in requests.values() if s.name == "POST /v1/videos"]
    assert {parent(s).span_id for s in speech_requests} == {s.span_id for s in speech}
    assert {parent(s).span_id for s in video_requests} == {s.span_id for s in videos}
    assert all(s.program == "vocalizr" for s in speech_requests)
    assert all(s.program == "visualizr" for s in video_requests)
    # Inside the services: the queue wait, the work, and vocalizr's encoding under its work.
    for request in speech_requests:
        assert {"queue wait", "synthesis", "encoding"} <= below(request), below(request)
    # A run stopped for a first sentence (vocalizr's preemption) encodes nothing and says so;
    # the request's run after it has the encoding (checked above, request by request).
    for synthesis in [s for s in spans if s.name == "synthesis"]:
        children = [s.name for s in spans if s.parent_id == synthesis.span_id]
        if STOPPED_EVENT in synthesis.events:
            assert synthesis.attributes["job.stopped"] is True and children == []
        else:
            assert children == ["encoding"]
    for request in video_requests:
        assert {"queue wait", "render and encode"} <= below(request), below(request)
    assert not [s for s in spans if s.failed]


def test_a_turn_with_vocalizr_down_shows_the_failed_span(
    chattr: Chattr, llm: FakeLLMServer, receiver: Receiver, tmp_path: Path
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    url = chattr(
        CHATTR_VOCALIZR_URL=nobody,
        CHATTR_VISUALIZR_URL=nobody,
        CHATTR_MEDIA_RETRIES="0",
        CHATTR_LOG_FORMAT="json",
    )
    llm.script(REPLY)
    result = chat(url, "vocalizr-down")
    assert result["text"] == REPLY
    assert [e["service"] for e in result["errors"]] == ["vocalizr"], result["errors"]

    def ended(spans: list[ReceivedSpan]) -> bool:
        return any(s.name == "chat turn" for s in turn_spans(spans, "vocalizr-down"))

    assert receiver.wait_for(ended, 30)
    spans = turn_spans(receiver.spans, "vocalizr-down")
    assert {s.program for s in spans} == {"chattr"}
    speech = [s for s in spans if s.name == "speech"]
    assert speech and all(s.failed for s in speech)
    assert any("vocalizr" in s.status_message for s in speech)
    (root,) = [s for s in spans if s.name == "chat turn"]
    assert root.attributes["chattr.outcome"] == "done"  # the reply stands without its speech

    # Its JSON-lines log: every line parses; the failure's line names the turn's trace and
    # conversation, and none holds the reply's words.
    log = tmp_path / f"chattr-{url.rsplit(':', 1)[1]}.log"
    lines = [json.loads(text) for text in log.read_text().splitlines()]
    assert {line["program"] for line in lines} == {"chattr"}
    failures = [line for line in lines if line["message"].startswith("media: vocalizr:")]
    assert failures, lines
    for line in failures:
        assert line["trace_id"] == root.trace_id
        assert line["conversation_id"] == "vocalizr-down"
    assert not any("Italy" in line["message"] for line in lines)
