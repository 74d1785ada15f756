"""Traces across the three programs: OpenTelemetry, configured by the standard `OTEL_*` variables.

Tracing is on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
set and `OTEL_SDK_DISABLED` is not true: spans go in batches over OTLP/HTTP (protobuf) to that
address, named after `OTEL_SERVICE_NAME` or else the program. Unset, no tracer provider is
installed and the helpers here return before calling into OpenTelemetry: a turn pays for no span,
not even a no-op one, and no request carries a `traceparent`.

A span's context crosses HTTP as W3C `traceparent`: `inject` on the way out (chattr's media
clients); on the way in, FastAPI's own instrumentation makes each request a server span, a
child of the caller's, once a tracer provider is installed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from opentelemetry import propagate, trace

log = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@dataclass
class TracingOptions:
    """Set once at start-up from the program's settings."""

    text: bool = False  # what people wrote or were answered, in the spans (CHATTR_TRACE_TEXT)


options = TracingOptions()

_lock = threading.Lock()
_provider: Any = None  # the SDK's TracerProvider once configured; one per process


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
    global _provider
    env = os.environ if environ is None else environ
    with _lock:
        if _provider is not None:
            return True
        if not tracing_wanted(env):
            return False
        # Imported only here: a program that does not trace never loads the SDK.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        named = env.get("OTEL_SERVICE_NAME", "").strip()
        resource = Resource.create({SERVICE_NAME: named or program})
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        _provider = provider
    log.info("tracing on: %s exports spans over OTLP/HTTP", named or program)
    return True


def tracing_on() -> bool:
    """Whether this process exports spans (`configure_tracing` found an endpoint)."""
    return _provider is not None


def flush_traces(timeout_ms: int = 5_000) -> None:
    """Send the spans still batched (at shutdown, or before a test reads its receiver)."""
    if _provider is not None:
        _provider.force_flush(timeout_ms)


def tracer(name: str) -> trace.Tracer:
    """A tracer for a module; it follows the provider installed later, if any."""
    return trace.get_tracer(name)


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current span's `traceparent` to outgoing headers (nothing when not tracing)."""
    if _provider is not None:
        propagate.inject(headers)


_tracer = tracer("chatacter")
_no_span = nullcontext(trace.INVALID_SPAN)


def span(name: str, **attributes: str | int | float | bool) -> AbstractContextManager[trace.Span]:
    """A child span of whatever is current, made current for the block (in a generator, the
    block must not hold a `yield`: the next step may run in another context); the block's
    exception is recorded on it, its status an error."""
    if _provider is None:
        return _no_span  # tracing off: not even the API's no-op span and context switch
    # What `start_as_current_span` does, without asking the provider for the tracer on each
    # call (a lookup under a lock, with a warnings filter) or nesting two more generators.
    return trace.use_span(_tracer.start_span(name, attributes=attributes), end_on_exit=True)
