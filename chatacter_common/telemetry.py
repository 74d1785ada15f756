"""Traces across the three programs: OpenTelemetry, configured by the standard `OTEL_*` variables.

Tracing is on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
set and `OTEL_SDK_DISABLED` is not true: spans go in batches over OTLP/HTTP (protobuf) to that
address, named after `OTEL_SERVICE_NAME` or else the program. Unset, no tracer provider is
installed and the helpers here return before calling into OpenTelemetry: a turn pays for no span,
not even a no-op one, and no request carries a `traceparent`.

A span's context crosses HTTP as W3C `traceparent`: `inject` on the way out (chattr's media
clients); on the way in, FastAPI's own instrumentation makes each request a server span, a
child of the caller's, once a tracer provider is installed.

The spans made through the helpers here (chattr's turn and its steps) take a light path on the
calling thread: plain records, made into the SDK's spans by the export worker (see
`chatacter_common.light_spans`); a turn's root, `memory` and `retrieval` cost its thread about
13 us of CPU there, against about 45 us as the SDK's spans. What
reaches the exporter is what the SDK would send. With a sampler other than the default
(parent-based, always on) set in `OTEL_TRACES_SAMPLER`, the helpers make the SDK's spans
instead, so that sampler decides. Spans made with `tracer` (the services' own) are always the
SDK's.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry import propagate, trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from chatacter_common.light_spans import Current, LightTracer

log = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@dataclass
class TracingOptions:
    """Set once at start-up from the program's settings."""

    text: bool = False  # what people wrote or were answered, in the spans (CHATTR_TRACE_TEXT)


options = TracingOptions()


@dataclass
class _Tracing:
    """This process's tracing, once configured: the SDK's provider, and the tracer of the
    helpers' spans (the light one, or the SDK's where another sampler is configured)."""

    provider: TracerProvider
    light: LightTracer | None
    current: type[Current]  # light_spans.Current, kept here: only a tracing process loads it
    sdk_tracers: dict[str, trace.Tracer] = field(default_factory=dict)

    def start_span(
        self, name: str, attributes: Mapping[str, str | int | float | bool] | None, scope: str
    ) -> trace.Span:
        if self.light is not None:
            return self.light.start_span(name, attributes, scope)
        sdk_tracer = self.sdk_tracers.get(scope)
        if sdk_tracer is None:
            sdk_tracer = self.sdk_tracers.setdefault(scope, self.provider.get_tracer(scope))
        return sdk_tracer.start_span(name, attributes=attributes)


_lock = threading.Lock()
_tracing: _Tracing | None = None  # one per process, once configured


def tracing_wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces (an empty variable means unset)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(env.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def configure_tracing(program: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install the exporting tracer provider for this process, once; whether tracing is on.

    `program` names the spans' service unless `OTEL_SERVICE_NAME` does.
    """
    global _tracing
    env = os.environ if environ is None else environ
    with _lock:
        if _tracing is not None:
            return True
        if not tracing_wanted(env):
            return False
        # Imported only here: a program that does not trace never loads the SDK.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        named = env.get("OTEL_SERVICE_NAME", "").strip()
        configured = _build(named or program, OTLPSpanExporter())
        trace.set_tracer_provider(configured.provider)
        _tracing = configured
    log.info("tracing on: %s exports spans over OTLP/HTTP", named or program)
    return True


def _build(service: str, exporter: SpanExporter) -> _Tracing:
    """A tracer provider batching spans to `exporter`, and the helpers' tracer: the light one
    where the provider's sampler (from `OTEL_TRACES_SAMPLER`) is the default, which it mirrors."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider, sampling
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from chatacter_common.light_spans import Current, LightSpanExporter, LightTracer

    resource = Resource.create({SERVICE_NAME: service})
    limits = SpanLimits()  # from OTEL_*_LIMIT, as the provider would read them
    provider = TracerProvider(resource=resource, span_limits=limits)
    processor = BatchSpanProcessor(LightSpanExporter(exporter, resource, limits))
    provider.add_span_processor(processor)
    default_on: sampling.Sampler = sampling.DEFAULT_ON
    default = provider.sampler.get_description() == default_on.get_description()
    light = LightTracer(processor.on_end) if default else None
    return _Tracing(provider, light, Current)


@contextmanager
def tracing_into(exporter: SpanExporter, service: str = "test") -> Iterator[TracerProvider]:
    """Trace into `exporter` for the block as `configure_tracing` would over OTLP, flushed and
    shut down at its end (how a test reads what a turn records); the process's global tracer
    provider is left alone, since once installed it stays for the process's life."""
    global _tracing
    with _lock:
        if _tracing is not None:
            raise RuntimeError("this process traces already: configure_tracing ran")
        configured = _build(service, exporter)
        _tracing = configured
    try:
        yield configured.provider
    finally:
        with _lock:
            _tracing = None
        configured.provider.shutdown()


def tracing_on() -> bool:
    """Whether this process exports spans (`configure_tracing` found an endpoint)."""
    return _tracing is not None


def flush_traces(timeout_ms: int = 5_000) -> None:
    """Send the spans still batched (at shutdown, or before a test reads its receiver)."""
    if _tracing is not None:
        _tracing.provider.force_flush(timeout_ms)


def tracer(name: str) -> trace.Tracer:
    """A tracer for a module (the SDK's spans); it follows the provider installed later, if
    any."""
    return trace.get_tracer(name)


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current span's `traceparent` to outgoing headers (nothing when not tracing)."""
    if _tracing is not None:
        propagate.inject(headers)


_no_span = nullcontext(trace.INVALID_SPAN)


def span(name: str, **attributes: str | int | float | bool) -> AbstractContextManager[trace.Span]:
    """A child span of whatever is current, made current for the block (in a generator, the
    block must not hold a `yield`: the next step may run in another context); the block's
    exception is recorded on it, its status an error."""
    if _tracing is None:
        return _no_span  # tracing off: not even the API's no-op span and context switch
    started = _tracing.start_span(name, attributes, "chatacter")
    return _tracing.current(started, end_on_exit=True, record_exception=True)


def start_span(
    name: str,
    attributes: Mapping[str, str | int | float | bool] | None = None,
    scope: str = "chatacter",
) -> trace.Span:
    """A child span of whatever is current, not made current (`use` does that) and ended by the
    caller; when not tracing, the invalid span, which records nothing."""
    if _tracing is None:
        return trace.INVALID_SPAN
    return _tracing.start_span(name, attributes, scope)


def use(span: trace.Span) -> AbstractContextManager[object]:
    """`span` made current for the block, not ended and its exceptions not recorded there (the
    caller records what it means); nothing when not tracing."""
    if _tracing is None:
        return nullcontext()
    return _tracing.current(span, end_on_exit=False, record_exception=False)
