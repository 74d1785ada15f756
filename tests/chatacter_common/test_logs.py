"""JSON-lines logs: each record one object with the ids that join it to a trace and a turn."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider

from chatacter_common.logs import JsonLines, conversation
from tests.serving import free_port

FIELDS = {"time", "level", "program", "logger", "message"}


def record(message: str, *, exc_info: bool = False) -> logging.LogRecord:
    return logging.getLogger("chattr.media.fanout").makeRecord(
        "chattr.media.fanout",
        logging.WARNING,
        __file__,
        1,
        message,
        (),
        sys.exc_info() if exc_info else None,
    )


def test_a_line_outside_a_span_and_a_turn_has_the_plain_fields() -> None:
    line = json.loads(JsonLines("vocalizr").format(record('said "hi"\nthen left')))
    assert set(line) == FIELDS
    assert (line["level"], line["program"], line["logger"]) == (
        "WARNING",
        "vocalizr",
        "chattr.media.fanout",
    )
    assert line["message"] == 'said "hi"\nthen left'
    assert line["time"].endswith("+00:00")


def test_a_line_in_a_turns_span_carries_its_trace_span_and_conversation() -> None:
    # A provider of the test's own: spans with real ids, nothing exported, no global state.
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("speech") as span, conversation("session-7"):
        text = JsonLines("chattr").format(record("media: vocalizr: unreachable"))
    assert "\n" not in text
    line = json.loads(text)
    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert line["conversation_id"] == "session-7"
    # Outside the block neither is there.
    assert set(json.loads(JsonLines("chattr").format(record("after")))) == FIELDS


def test_an_exception_is_kept_on_its_line() -> None:
    try:
        raise ValueError("bad clip")
    except ValueError:
        line = json.loads(JsonLines("visualizr").format(record("render failed", exc_info=True)))
    assert "ValueError: bad clip" in line["exception"]


@pytest.mark.slow
def test_vocalizr_logs_every_line_as_json(characters_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "VOCALIZR_CHARACTERS_DIR": str(characters_dir),
        "VOCALIZR_DATA_DIR": str(tmp_path),
        "VOCALIZR_UI": "false",
        "VOCALIZR_LOG_FORMAT": "json",
    }
    command = [sys.executable, "-m", "vocalizr", "--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path / "vocalizr.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=out)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "vocalizr did not become ready"
            time.sleep(0.2)
        answer = httpx.post(
            f"{url}/v1/speech", json={"text": "Hi.", "voice": "napoleon"}, timeout=60
        )
        assert answer.status_code == 200, answer.text
    finally:
        process.terminate()
        process.wait(timeout=30)
    lines = [json.loads(text) for text in log.read_text().splitlines()]  # every one parses
    assert lines and all(set(line) >= FIELDS for line in lines)
    assert {line["program"] for line in lines} == {"vocalizr"}
    loggers = {line["logger"] for line in lines}
    assert "vocalizr.service" in loggers  # its own "ready" line
    # uvicorn's lines go the same way, the request included.
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert any("/v1/speech" in line["message"] for line in access), access
