"""OpenTelemetry set-up and W3C trace-context propagation through Kafka headers and the outbox.

Configuration comes from the standard ``OTEL_*`` variables: spans are exported over OTLP/HTTP
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, and
kept in-process otherwise. Span attributes never carry personal data: only pseudonymous ids
(event id, subject id, customer number, request id) and technical facts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
TRACEPARENT = "traceparent"


def make_tracer_provider(service_name: str, extra_processors: Sequence[SpanProcessor] = ()) -> TracerProvider:
    """A provider for one service. It is returned, not installed globally, so that tests and
    several services in one process each keep their own (``set_tracer_provider`` works once)."""
    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name), "service.namespace": "lampo"}
    )
    provider = TracerProvider(resource=resource)
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    for processor in extra_processors:
        provider.add_span_processor(processor)
    return provider


def context_from_headers(headers: Mapping[str, str] | Sequence[tuple[str, bytes]] | None) -> otel_context.Context:
    """The trace context a Kafka record (or a stored outbox row) carries; empty when none."""
    carrier: dict[str, str] = {}
    if headers:
        items = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in items:
            carrier[name.lower()] = value.decode() if isinstance(value, bytes) else str(value)
    return _PROPAGATOR.extract(carrier)


def current_traceparent() -> str | None:
    """The ``traceparent`` of the active span, for storing with an outbox row."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT)


def trace_id_of(traceparent: str | None) -> str | None:
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 else None


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


@contextmanager
def consume_span(
    tracer: Tracer,
    topic: str,
    headers: Sequence[tuple[str, bytes]] | None,
    attributes: Mapping[str, str | int],
) -> Iterator[Span]:
    """A ``{topic} process`` span, child of the producer's context taken from the headers."""
    parent = context_from_headers(headers)
    with tracer.start_as_current_span(
        f"{topic} process",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={"messaging.system": "kafka", "messaging.destination.name": topic, **attributes},
    ) as span:
        yield span


@contextmanager
def publish_span(
    tracer: Tracer, topic: str, traceparent: str | None, attributes: Mapping[str, str | int]
) -> Iterator[str | None]:
    """A ``{topic} publish`` span under the stored context; yields the traceparent to send."""
    parent = context_from_headers({TRACEPARENT: traceparent} if traceparent else None)
    with tracer.start_as_current_span(
        f"{topic} publish",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "kafka", "messaging.destination.name": topic, **attributes},
    ):
        yield current_traceparent()
