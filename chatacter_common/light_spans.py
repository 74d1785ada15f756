"""Spans recorded cheaply on the calling thread, made into the SDK's spans by the export worker.

The SDK's `Tracer.start_span` and `Span.end` cost about 15 us each in Python (bounded attributes
under a lock, the sampler's context lookups, a read-only copy at the end), and a chattr turn makes
12 spans, three of them before the LLM is asked. A `LightSpan` records what a span holds as plain
fields: its ids (`random.getrandbits`, as the SDK's id generator), its parent's context, its
times, attributes, events, links and status. When it ends it goes, as it is, into the batch span
processor's queue (which reads only its context's sampled flag), and the processor's worker
thread hands it to a `LightSpanExporter`, which makes the SDK's `ReadableSpan` from it, with the
span limits and attribute checks the SDK applies, before the OTLP exporter encodes the batch.

A light span is a span like the SDK's to everything else: made current, it is the parent of the
spans started in its block (the SDK's included), `propagate.inject` writes its `traceparent`,
and logs find its ids. It stands in for the default sampler only (parent-based, always on):
a root or a sampled parent's child is sampled, a child of an unsampled parent records nothing.
With another sampler configured, `chatacter_common.telemetry` takes the SDK's path instead.

Only a process that traces imports this module: it loads the SDK.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from opentelemetry import context, trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, Status, StatusCode, TraceFlags
from opentelemetry.util import types

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)

# (name, attributes, timestamp in ns): an event as recorded, made the SDK's `Event` on export.
RecordedEvent = tuple[str, types.Attributes, int]


def _new_id(bits: int) -> int:
    """A random non-zero id (zero is the invalid id), as the SDK's `RandomIdGenerator` makes."""
    while True:
        value = random.getrandbits(bits)
        if value:
            return value


class LightSpan(trace.Span):
    """A sampled span that records into plain fields; `end` hands it to the export queue.

    Like the SDK's span, it ignores what is set on it once ended. Unlike it, it takes no lock:
    a span is written by the one turn step that holds it (the GIL keeps each write whole).
    """

    def __init__(
        self,
        name: str,
        span_context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, types.AttributeValue],
        scope: InstrumentationScope,
        ended: Callable[[LightSpan], None],
    ) -> None:
        self.name = name
        self.context = span_context  # what the batch span processor reads
        self.parent = parent
        self.attributes = attributes
        self.scope = scope
        self.events: list[RecordedEvent] = []
        self.links: list[Link] = []
        self.status = _UNSET
        self.start_time = time.time_ns()
        self.end_time: int | None = None
        self._ended = ended

    def __repr__(self) -> str:
        return f'LightSpan(name="{self.name}", context={self.context})'

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        if self.end_time is None:
            self.attributes.update(attributes)

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self.end_time is None:
            self.attributes[key] = value

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if self.end_time is None:
            self.events.append((name, attributes, timestamp or time.time_ns()))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self.end_time is None and (context.is_valid or attributes or context.trace_state):
            self.links.append(Link(context, attributes))

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the SDK's: OK is final, UNSET changes nothing.
        if self.end_time is not None or self.status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self.status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """The SDK's `exception` event: type, message, the formatted traceback (formatted now,
        while the frames it names are alive)."""
        if self.end_time is not None:
            return
        module, qualname = type(exception).__module__, type(exception).__qualname__
        recorded: dict[str, types.AttributeValue] = {
            "exception.type": qualname if module in ("", "builtins") else f"{module}.{qualname}",
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            recorded.update(attributes)
        self.add_event("exception", recorded, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return  # ended once already, as the SDK's span ignores a second end
        self.end_time = end_time or time.time_ns()
        self._ended(self)


class LightTracer:
    """Starts light spans, children of whatever span is current; each one ended goes to `ended`
    (the batch span processor's `on_end`, whose exporter is a `LightSpanExporter`)."""

    def __init__(self, ended: Callable[[Any], None]) -> None:
        self._ended = ended
        self._scopes: dict[str, InstrumentationScope] = {}

    def start_span(
        self,
        name: str,
        attributes: Mapping[str, types.AttributeValue] | None = None,
        scope: str = "chatacter",
    ) -> trace.Span:
        """A span started now, not made current; the parent-based sampler's decision."""
        parent = trace.get_current_span().get_span_context()
        if not parent.is_valid:
            span_context = SpanContext(_new_id(128), _new_id(64), False, _SAMPLED)
            parent_context = None
        elif parent.trace_flags.sampled:
            span_context = SpanContext(
                parent.trace_id, _new_id(64), False, _SAMPLED, parent.trace_state
            )
            parent_context = parent
        else:  # an unsampled caller: what the SDK returns then, a span that records nothing
            unsampled = SpanContext(
                parent.trace_id, _new_id(64), False, parent.trace_flags, parent.trace_state
            )
            return trace.NonRecordingSpan(unsampled)
        instrumentation = self._scopes.get(scope)
        if instrumentation is None:
            instrumentation = self._scopes.setdefault(scope, InstrumentationScope(scope))
        return LightSpan(
            name,
            span_context,
            parent_context,
            dict(attributes) if attributes else {},
            instrumentation,
            self._ended,
        )


class Current:
    """A span made current for a block (any span, light or the SDK's): what `trace.use_span`
    does, as a plain class rather than a generator. The block's exception (an `Exception`, not
    a `GeneratorExit` or a cancellation) is recorded on the span, its status an error."""

    __slots__ = ("_token", "end_on_exit", "record_exception", "span")

    def __init__(self, span: trace.Span, *, end_on_exit: bool, record_exception: bool) -> None:
        self.span = span
        self.end_on_exit = end_on_exit
        self.record_exception = record_exception

    def __enter__(self) -> trace.Span:
        self._token = context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        context.detach(self._token)
        if self.record_exception and isinstance(error, Exception) and self.span.is_recording():
            self.span.record_exception(error)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        if self.end_on_exit:
            self.span.end()


class LightSpanExporter(SpanExporter):
    """Makes the SDK's spans of the light spans in a batch (in the batch processor's worker
    thread), then exports the batch with `exporter`; the SDK's own spans pass as they are."""

    def __init__(self, exporter: SpanExporter, resource: Resource, limits: SpanLimits) -> None:
        self.exporter = exporter
        self.resource = resource
        self.limits = limits

    def readable(self, span: LightSpan) -> ReadableSpan:
        """The SDK's read-only span of what `span` recorded, within the span limits."""
        limits = self.limits
        events = [
            Event(
                name,
                BoundedAttributes(
                    limits.max_event_attributes,
                    attributes,
                    max_value_len=limits.max_attribute_length,
                ),
                timestamp,
            )
            for name, attributes, timestamp in span.events
        ]
        links = [
            Link(
                link.context,
                BoundedAttributes(
                    limits.max_link_attributes,
                    link.attributes,
                    max_value_len=limits.max_attribute_length,
                ),
            )
            for link in span.links
        ]
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=self.resource,
            attributes=BoundedAttributes(
                limits.max_span_attributes,
                span.attributes,
                max_value_len=limits.max_span_attribute_length,
            ),
            events=BoundedList.from_seq(limits.max_events, events),
            links=BoundedList.from_seq(limits.max_links, links),
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.scope,
        )

    def export(self, spans: Sequence[ReadableSpan | LightSpan]) -> SpanExportResult:
        made = [self.readable(span) if isinstance(span, LightSpan) else span for span in spans]
        return self.exporter.export(made)

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.exporter.force_flush(timeout_millis)
