"""A turn's trace: its root span, and the spans of its steps (memory, retrieval, the LLM).

The root span is made current around each step of the turn (`TurnLoop` iterates it), so spans
made anywhere inside a step, media tasks started there included, are its children. Nothing a
person wrote or was answered goes into a span unless `CHATTR_TRACE_TEXT` says so. The spans
start through `chatacter_common.telemetry`, whose light path records them on the turn's thread
for the export worker to make into the SDK's. When tracing is off, none of this calls into
OpenTelemetry.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from opentelemetry.trace import INVALID_SPAN, Span, Status, StatusCode

from chatacter_common.telemetry import options, start_span, tracing_on, use
from chattr.refusal import Refusal
from chattr.reply import TurnState


def turn_outcome(state: TurnState | None, failure: BaseException | None) -> str:
    """How a turn ended: `done`, `refused` (a refusal the person sees), `failed`, `stopped`."""
    if isinstance(failure, Refusal):
        return "refused"
    if failure is not None and not isinstance(failure, GeneratorExit | asyncio.CancelledError):
        return "failed"
    if state is not None and state.done:
        return "done"
    return "stopped"


def start_turn(message: str, character: str, session_id: str) -> Span:
    """The turn's root span (not made current: `in_turn` does that for each step); when not
    tracing, the invalid span, which records nothing."""
    if not tracing_on():
        return INVALID_SPAN
    span = start_span(
        "chat turn",
        {"chattr.conversation.id": session_id, "chattr.character": character},
        scope="chattr",
    )
    if options.text and span.is_recording():
        span.set_attribute("chattr.message", message)
    return span


def in_turn(span: Span) -> AbstractContextManager[object]:
    """The turn's root made current for one step of the turn, so the step's spans are its
    children (nothing when not tracing); an exception passing through is `end_turn`'s to record."""
    return use(span)


def end_turn(span: Span, state: TurnState | None, failure: BaseException | None) -> None:
    """Close the root span with the turn's outcome, timings and errors."""
    if not span.is_recording():
        return
    outcome = turn_outcome(state, failure)
    span.set_attribute("chattr.outcome", outcome)
    if state is not None:
        for name, seconds in state.timings.items():
            span.set_attribute(f"chattr.timing.{name}", round(seconds, 4))
        for error in state.errors:
            span.add_event("turn error", {"part": error.service, "detail": error.detail})
        if options.text:
            span.set_attribute("chattr.reply", state.text)
    if outcome in ("failed", "refused") and failure is not None:
        span.record_exception(failure)
        span.set_status(Status(StatusCode.ERROR, f"{type(failure).__name__}: {failure}"))
    span.end()


@dataclass
class LlmSpan:
    """The LLM's answer as a span: its time to first token, its size, its failure."""

    started: float = field(default_factory=time.perf_counter)
    span: Span = INVALID_SPAN
    chunks: int = 0

    @classmethod
    def start(cls) -> LlmSpan:
        return cls(span=start_span("llm", scope="chattr")) if tracing_on() else cls()

    def chunk(self) -> None:
        """A piece of text came; the first one marks the time to first token."""
        if self.chunks == 0 and self.span.is_recording():
            ttft = time.perf_counter() - self.started
            self.span.set_attribute("llm.time_to_first_token_s", round(ttft, 4))
            self.span.add_event("first token")
        self.chunks += 1

    def end(self, failure: BaseException | None = None) -> None:
        if not self.span.is_recording():
            return
        self.span.set_attribute("llm.chunks", self.chunks)
        if failure is not None:
            self.span.record_exception(failure)
            self.span.set_status(Status(StatusCode.ERROR, type(failure).__name__))
        self.span.end()
