"""Logs for people (text) or for machines (JSON lines), the same for the three programs.

A JSON line holds `time` (UTC, ISO 8601), `level`, `program`, `logger`, `message`; `trace_id`
and `span_id` when a recording span is current (tracing on: the ids the trace viewer shows);
`conversation_id` inside a chattr turn; `exception` when one is logged. The words a person
wrote never go in by this formatter: only what the code logs, and chattr logs ids, not text.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from opentelemetry import trace

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The conversation whose turn runs in this context (tasks and worker threads started in a turn
# inherit it).
_conversation: ContextVar[str | None] = ContextVar("conversation", default=None)


@contextmanager
def conversation(conversation_id: str) -> Iterator[None]:
    """Log lines written inside the block carry `conversation_id`."""
    token = _conversation.set(conversation_id)
    try:
        yield
    finally:
        _conversation.reset(token)


class JsonLines(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, program: str) -> None:
        super().__init__()
        self.program = program

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "program": self.program,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            line["trace_id"] = format(context.trace_id, "032x")
            line["span_id"] = format(context.span_id, "016x")
        conversation_id = _conversation.get()
        if conversation_id is not None:
            line["conversation_id"] = conversation_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


def configure_logging(program: str, log_format: LogFormat, level: int = logging.INFO) -> None:
    """The root logger's one handler, on stderr, in `log_format`; in JSON, uvicorn's loggers go
    through it too (start uvicorn with `uvicorn_log_config`)."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonLines(program))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    if log_format != "json":
        return
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_log = logging.getLogger(name)
        uvicorn_log.handlers.clear()
        uvicorn_log.propagate = True


def uvicorn_log_config(log_format: LogFormat) -> dict[str, Any] | None:
    """uvicorn's `log_config`: its own for text (its familiar lines), none for JSON (its
    records then reach the root logger's JSON handler)."""
    if log_format == "json":
        return None
    from uvicorn.config import LOGGING_CONFIG

    return LOGGING_CONFIG
