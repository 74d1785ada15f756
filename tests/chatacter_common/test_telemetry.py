"""Tracing off costs a turn nothing: chattr's span helpers return before OpenTelemetry, so a
turn switches no context and makes no span, not even a no-op one.

Tracing on (spans, their parents, a failure's status, the `traceparent`) is tested through the
real programs and an OTLP receiver in `tests/e2e/test_tracing.py`: a tracer provider, once
installed, stays for the process's life, which a unit test must not leave behind.
"""

from __future__ import annotations

import pytest
from opentelemetry import context

from chatacter_common.telemetry import inject, span, tracing_on
from chattr.turn import tracing
from chattr.turn.tracing import LlmSpan


@pytest.fixture(autouse=True)
def tracing_off() -> None:
    if tracing_on():  # only where the shell's OTEL_* variables reached an in-process service
        pytest.skip("a tracer provider is installed in this test process")


def test_a_turns_spans_switch_no_context_and_record_nothing() -> None:
    outside = context.get_current()
    root = tracing.start_turn("Tell me about the Alps.", "napoleon", "session-1")
    with tracing.in_turn(root), span("memory", **{"chattr.sentence.index": 0}) as step:
        # The very context object of the caller: nothing was attached, so nothing to detach.
        assert context.get_current() is outside
        assert not step.is_recording() and not root.is_recording()
        llm = LlmSpan.start()
        llm.chunk()
        llm.end()
        assert not llm.span.is_recording()
    headers: dict[str, str] = {}
    inject(headers)
    assert headers == {}


def test_a_failure_inside_a_span_still_reaches_the_caller() -> None:
    with pytest.raises(ValueError, match="vocalizr down"), span("speech"):
        raise ValueError("vocalizr down")
