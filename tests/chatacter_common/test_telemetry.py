"""Tracing off costs a turn nothing: chattr's span helpers return before OpenTelemetry, so a
turn switches no context and makes no span, not even a no-op one.

Tracing on: here through `tracing_into`, the pipeline `configure_tracing` installs but exporting
to memory and gone after the test (a global tracer provider, once installed, stays for the
process's life); across the real programs and an OTLP receiver in `tests/e2e/test_tracing.py`.
"""

from __future__ import annotations

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from chatacter_common.telemetry import inject, span, tracing_into, tracing_on, use
from chattr.reply import TurnState
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


# Tracing on, in this process: `tracing_into` batches the spans to an in-memory exporter as
# `configure_tracing` does over OTLP (the same processor and exporter wrapper), and leaves no
# tracer provider behind. chattr's helpers take the light path there, unless a sampler is set.


def traced_turn(failure: BaseException | None = None) -> None:
    """A turn's spans through chattr's helpers, as `TurnLoop` and the turn service make them."""
    root = tracing.start_turn("Tell me about the Alps.", "napoleon", "session-1")
    with tracing.in_turn(root):
        with span("memory"):
            pass
        with span("retrieval", **{"chattr.hits": 4}) as retrieval:
            retrieval.set_attribute("chattr.memories", 3)
        llm = LlmSpan.start()
        llm.chunk()
        llm.chunk()
        llm.end()
        with pytest.raises(ValueError, match="vocalizr down"), span("speech"):
            raise ValueError("vocalizr down: connection refused")
    state = TurnState(session_id="session-1", character="napoleon", message="", done=True)
    state.timings = {"total_s": 1.25}
    state.add_error("vocalizr", "unreachable")
    tracing.end_turn(root, state, failure)


def attributes_of(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def exported() -> dict[str, ReadableSpan]:
    """The spans of one traced turn as the exporter receives them, by name."""
    exporter = InMemorySpanExporter()
    with tracing_into(exporter):
        traced_turn()
    spans = exporter.get_finished_spans()
    assert len(spans) == 5
    return {s.name: s for s in spans}


def test_a_turns_spans_are_children_of_its_root_in_one_trace() -> None:
    spans = exported()
    root = spans["chat turn"]
    assert root.parent is None
    assert root.context is not None and root.context.trace_flags.sampled
    for name in ("memory", "retrieval", "llm", "speech"):
        step = spans[name]
        assert step.context is not None and step.context.trace_id == root.context.trace_id
        assert step.parent == root.context, name
    assert len({s.context.span_id for s in spans.values() if s.context is not None}) == 5
    assert root.resource.attributes["service.name"] == "test"
    assert root.instrumentation_scope is not None
    assert root.instrumentation_scope.name == "chattr"
    assert all(s.end_time is not None and s.start_time is not None for s in spans.values())
    assert spans["memory"].start_time >= root.start_time  # type: ignore[operator]


def test_attributes_events_and_a_failure_are_what_the_spans_recorded() -> None:
    spans = exported()
    root = spans["chat turn"]
    assert attributes_of(root) == {
        "chattr.conversation.id": "session-1",
        "chattr.character": "napoleon",
        "chattr.outcome": "done",
        "chattr.timing.total_s": 1.25,
    }
    assert [(e.name, dict(e.attributes or {})) for e in root.events] == [
        ("turn error", {"part": "vocalizr", "detail": "unreachable"})
    ]
    assert attributes_of(spans["retrieval"]) == {"chattr.hits": 4, "chattr.memories": 3}
    llm = spans["llm"]
    assert attributes_of(llm)["llm.chunks"] == 2
    assert [e.name for e in llm.events] == ["first token"]
    assert spans["memory"].status.status_code is StatusCode.UNSET

    speech = spans["speech"]
    assert speech.status.status_code is StatusCode.ERROR
    assert speech.status.description == "ValueError: vocalizr down: connection refused"
    (event,) = speech.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "vocalizr down: connection refused"
    assert "raise ValueError" in str(event.attributes["exception.stacktrace"])


def test_the_light_path_exports_what_the_sdks_spans_would(monkeypatch: pytest.MonkeyPatch) -> None:
    light = exported()
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")  # another sampler: the SDK's spans
    sdk = exported()

    def shape(span: ReadableSpan) -> object:
        events = [(e.name, dict(e.attributes or {})) for e in span.events]
        for _, attributes in events:
            attributes.pop("exception.stacktrace", None)  # its line numbers differ
        scope = span.instrumentation_scope
        return (
            span.kind,
            attributes_of(span),
            events,
            span.status.status_code,
            span.status.description,
            scope and scope.name,
            dict(span.resource.attributes),
            span.parent is None,
            span.dropped_attributes,
            span.dropped_events,
        )

    assert {name: shape(s) for name, s in light.items()} == {
        name: shape(s) for name, s in sdk.items()
    }


def test_the_span_limits_and_attribute_checks_apply_on_export_as_the_sdks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3")
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "5")

    def recorded() -> ReadableSpan:
        exporter = InMemorySpanExporter()
        with tracing_into(exporter), span("memory", a=1, b="chunked") as step:
            step.set_attribute("c", 3.5)
            step.set_attribute("d", object())  # type: ignore[arg-type]
            step.set_attribute("e", True)
        (memory,) = exporter.get_finished_spans()
        return memory

    light = recorded()
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    sdk = recorded()
    assert attributes_of(light) == attributes_of(sdk)
    assert light.dropped_attributes == sdk.dropped_attributes > 0
    assert len(attributes_of(light)) == 3


def test_a_span_made_current_is_the_parent_of_the_sdks_spans_and_of_the_traceparent() -> None:
    exporter = InMemorySpanExporter()
    headers: dict[str, str] = {}
    with tracing_into(exporter) as provider:
        with span("speech") as speech:
            inject(headers)
            # What a service's own instrumentation would make in this process.
            with provider.get_tracer("service").start_as_current_span("POST /v1/speech"):
                pass
        ids = speech.get_span_context()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert headers == {"traceparent": f"00-{ids.trace_id:032x}-{ids.span_id:016x}-01"}
    assert spans["POST /v1/speech"].parent == spans["speech"].context == ids


def test_an_ended_span_records_nothing_more() -> None:
    exporter = InMemorySpanExporter()
    with tracing_into(exporter):
        with span("join") as join:
            pass
        assert not join.is_recording()
        join.set_attribute("late", True)
        join.add_event("late")
        join.end()
    (exported_join,) = exporter.get_finished_spans()
    assert attributes_of(exported_join) == {} and exported_join.events == ()


def test_under_an_unsampled_caller_a_span_records_nothing() -> None:
    unsampled = trace.NonRecordingSpan(
        trace.SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=trace.TraceFlags(0))
    )
    exporter = InMemorySpanExporter()
    with tracing_into(exporter), use(unsampled), span("memory") as step:
        assert not step.is_recording()
        assert step.get_span_context().trace_id == 0x1234
    assert exporter.get_finished_spans() == ()


def test_a_configured_sampler_decides_instead_of_the_light_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    exporter = InMemorySpanExporter()
    with tracing_into(exporter):
        traced_turn()
    assert exporter.get_finished_spans() == ()


def test_nothing_is_exported_once_tracing_is_off_again() -> None:
    exporter = InMemorySpanExporter()
    with tracing_into(exporter), span("memory"):
        pass
    assert not tracing_on()
    traced_turn()
    assert [s.name for s in exporter.get_finished_spans()] == ["memory"]
