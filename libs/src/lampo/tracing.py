"""OpenTelemetry set-up and W3C trace-context propagation through Kafka headers and the outbox.

Export paths (both may be on; with neither, spans stay in-process):

- ``LAMPO_ZIPKIN_ENDPOINT`` (e.g. ``http://127.0.0.1:9411/api/v2/spans``): Zipkin's own JSON v2
  API, through ``opentelemetry-exporter-zipkin-json``. This is the local suite's backend
  (``deploy/local/zipkin.sh``). Zipkin 3 does not accept OTLP itself (``POST /v1/traces`` answers
  404); OTLP ingest needs the experimental ``zipkin-module-otel`` loaded into the server, or a
  collector in front. Zipkin's native API needs neither.
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``): OTLP/HTTP, for
  Jaeger, an OpenTelemetry Collector or any OTLP backend.

Span attributes never carry personal data: only pseudonymous ids (event id, subject id,
customer number, request id) and technical facts.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping, Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_log = logging.getLogger("lampo.tracing")
_PROPAGATOR = TraceContextTextMapPropagator()
TRACEPARENT = "traceparent"
ZIPKIN_ENDPOINT_ENV = "LAMPO_ZIPKIN_ENDPOINT"


def make_tracer_provider(
    service_name: str, extra_processors: Sequence[SpanProcessor] = (), *, zipkin_endpoint: str | None = None
) -> TracerProvider:
    """A provider for one service. It is returned, not installed globally, so that tests and
    several services in one process each keep their own (``set_tracer_provider`` works once).
    ``zipkin_endpoint`` defaults to ``LAMPO_ZIPKIN_ENDPOINT``."""
    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name), "service.namespace": "lampo"}
    )
    provider = TracerProvider(resource=resource)
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    zipkin = zipkin_endpoint or os.environ.get(ZIPKIN_ENDPOINT_ENV)
    if zipkin:
        provider.add_span_processor(BatchSpanProcessor(_zipkin_exporter(zipkin)))
    for processor in extra_processors:
        provider.add_span_processor(processor)
    return provider


def _zipkin_exporter(endpoint: str) -> SpanExporter:
    """Zipkin's JSON v2 exporter; an unreachable Zipkin costs one warning a minute, not a
    traceback per batch (tracing must never disturb the service)."""
    import requests
    from opentelemetry.exporter.zipkin.json import ZipkinExporter

    class QuietZipkinExporter(SpanExporter):
        def __init__(self) -> None:
            self.inner = ZipkinExporter(endpoint=endpoint, timeout=5)
            self.warned_at = -math.inf

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            try:
                return self.inner.export(spans)  # type: ignore[arg-type]  # its hint says sdk Span; ReadableSpan is what it reads
            except requests.RequestException as e:
                now = time.monotonic()
                if now - self.warned_at > 60:
                    self.warned_at = now
                    _log.warning("spans not exported to Zipkin at %s: %s", endpoint, type(e).__name__)
                return SpanExportResult.FAILURE

        def shutdown(self) -> None:
            self.inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    return QuietZipkinExporter()


def context_from_headers(headers: Mapping[str, str] | Sequence[tuple[str, bytes]] | None) -> otel_context.Context:
    """The trace context a Kafka record (or a stored outbox row) carries; empty when none."""
    carrier: dict[str, str] = {}
    if headers:
        items = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in items:
            if value is None:  # a Kafka header may have a null value
                continue
            carrier[name.lower()] = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return _PROPAGATOR.extract(carrier)


def current_traceparent() -> str | None:
    """The ``traceparent`` of the active span, for storing with an outbox row."""
    return traceparent_of(trace.get_current_span())


def trace_id_of(traceparent: str | None) -> str | None:
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 else None


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def publish_span(
    tracer: Tracer, topic: str, traceparent: str | None, attributes: Mapping[str, str | int]
) -> str | None:
    """Record a ``{topic} publish`` span under the stored context; returns the traceparent to
    send with the record. Started and ended here, never made current: the relay publishes
    hundreds of rows a batch, and attaching each to the context cost a third of the span."""
    parent = context_from_headers({TRACEPARENT: traceparent} if traceparent else None)
    span = tracer.start_span(
        f"{topic} publish",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "kafka", "messaging.destination.name": topic, **attributes},
    )
    span.end()
    return traceparent_of(span)


def traceparent_of(span: trace.Span) -> str | None:
    """W3C ``traceparent`` of ``span``; None for an invalid (non-recording, empty) context."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{format(ctx.trace_id, '032x')}-{format(ctx.span_id, '016x')}-{ctx.trace_flags:02x}"
