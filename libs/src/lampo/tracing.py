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

What is traced, and where (one trace from an HTTP request through Kafka to its outcome):

- HTTP servers: OpenTelemetry's ASGI and FastAPI instrumentation on every route and mount of a
  ``lampo.service.Runtime`` (:func:`instrument_asgi`, :func:`instrument_fastapi`); the span's URL
  attributes keep the route template, never the path or query as sent (a path may name a user).
- HTTP clients: OpenTelemetry's httpx instrumentation (:func:`instrument_httpx`), which also
  injects the trace context into every service-to-service call.
- SQL: ``lampo.db.tracing`` (a span per statement, under an active span only; never parameters).
- Kafka: the consumers' ``process <topic>`` spans (``lampo.messaging.consumer``) and the outbox
  relay's ``send <topic>`` spans (:func:`publish_span`).

Propagation is ``opentelemetry.propagate`` (the global TextMap propagator, W3C trace context by
default, ``OTEL_PROPAGATORS`` to change it) both ways: nothing formats ``traceparent`` by hand.

Sampling (:func:`make_sampler`): parent-based. A trace's first span decides by its flow
(``lampo.flow``, set at span start): privacy flows (DSARs, their tasks and acks, consents and
withdrawals, holds) and HTTP requests are always sampled; bulk ingest is sampled by
``LAMPO_TRACE_SAMPLE_RATIO`` (default 1.0); a privacy span is sampled even under an unsampled
remote parent, so a privacy flow caused by bulk ingest is never lost.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, Tracer
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

_log = logging.getLogger("lampo.tracing")
TRACEPARENT = "traceparent"
ZIPKIN_ENDPOINT_ENV = "LAMPO_ZIPKIN_ENDPOINT"
SAMPLE_RATIO_ENV = "LAMPO_TRACE_SAMPLE_RATIO"

# The flow a trace's first span belongs to, given as an attribute at span start (the sampler sees
# only what the span starts with).
FLOW = "lampo.flow"
PRIVACY = "privacy"
BULK = "bulk"
# Topic flows: the privacy flows are always traced, bulk ingest by ratio.
PRIVACY_TOPICS = frozenset(
    {
        "dsar.requests.v1",
        "dsar.events.v1",
        "privacy.tasks.v1",
        "privacy.acks.v1",
        "consent.inbound.v1",
        "consent.events.v1",
        "retention.inbound.v1",
        "retention.holds.v1",
    }
)
BULK_TOPICS = frozenset({"registry.inbound.v1", "registry.events.v1", "billing.inbound.v1", "recordings.inbound.v1"})


def flow_of(topic: str) -> str | None:
    """``privacy``, ``bulk`` or None (neither: sampled as the ratio says, see :class:`FlowSampler`)."""
    if topic in PRIVACY_TOPICS:
        return PRIVACY
    if topic in BULK_TOPICS:
        return BULK
    return None


class FlowSampler(Sampler):
    """The decision for a trace's first span: ``lampo.flow=privacy`` and HTTP server requests
    (the APIs are staff and subject operations: few, and each one matters) are always sampled;
    everything else (``lampo.flow=bulk``, and spans of no flow) by ``ratio``, on the trace id,
    so every service takes the same decision for one trace."""

    def __init__(self, ratio: float) -> None:
        self.ratio = ratio
        self._by_ratio = TraceIdRatioBased(ratio)

    def should_sample(  # noqa: PLR0917 - the Sampler interface's signature
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        flow = (attributes or {}).get(FLOW)
        if flow == PRIVACY or (flow is None and kind == SpanKind.SERVER):
            return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        return self._by_ratio.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"FlowSampler{{privacy and http: always, otherwise {self.ratio}}}"


class PrivacyOnlySampler(Sampler):
    """Under a remote parent that was not sampled: sample a privacy span anyway (a withdrawal
    caused by an unsampled bulk record is still traced from there on), drop the rest."""

    def should_sample(  # noqa: PLR0917 - the Sampler interface's signature
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        sampler = ALWAYS_ON if (attributes or {}).get(FLOW) == PRIVACY else ALWAYS_OFF
        return sampler.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return "PrivacyOnlySampler"


def sample_ratio(value: str | None = None) -> float:
    """``LAMPO_TRACE_SAMPLE_RATIO`` (or ``value``): a number from 0 to 1, default 1.0."""
    text = os.environ.get(SAMPLE_RATIO_ENV) if value is None else value
    if text is None or not text.strip():
        return 1.0
    try:
        ratio = float(text)
    except ValueError:
        raise ValueError(f"{SAMPLE_RATIO_ENV}: not a number (a ratio from 0 to 1)") from None
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"{SAMPLE_RATIO_ENV}: {ratio} is outside 0 to 1")
    return ratio


def make_sampler(ratio: float | None = None) -> Sampler:
    """Parent-based: a child follows its parent's decision, except a privacy span under an
    unsampled remote parent (:class:`PrivacyOnlySampler`); a root decides by :class:`FlowSampler`."""
    return ParentBased(
        root=FlowSampler(sample_ratio() if ratio is None else ratio),
        remote_parent_not_sampled=PrivacyOnlySampler(),
    )


def make_tracer_provider(
    service_name: str,
    extra_processors: Sequence[SpanProcessor] = (),
    *,
    zipkin_endpoint: str | None = None,
    sample_ratio: float | None = None,
) -> TracerProvider:
    """A provider for one service. It is returned, not installed globally, so that tests and
    several services in one process each keep their own (``set_tracer_provider`` works once).
    ``zipkin_endpoint`` defaults to ``LAMPO_ZIPKIN_ENDPOINT``, ``sample_ratio`` to
    ``LAMPO_TRACE_SAMPLE_RATIO`` (:func:`make_sampler`)."""
    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name), "service.namespace": "lampo"}
    )
    provider = TracerProvider(resource=resource, sampler=make_sampler(sample_ratio))
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
    """The trace context a Kafka record (or a stored outbox row, or an HTTP request) carries,
    read by the global propagator; an empty context when none."""
    carrier: dict[str, str] = {}
    if headers:
        items = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in items:
            if value is None:  # a Kafka header may have a null value
                continue
            carrier[name.lower()] = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return propagate.extract(carrier)


def carrier_of(context: otel_context.Context | None = None) -> dict[str, str]:
    """The headers the global propagator writes for ``context`` (default: the current one)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier


def current_traceparent() -> str | None:
    """The ``traceparent`` of the active span, for storing with an outbox row."""
    return carrier_of().get(TRACEPARENT)


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id a stored ``traceparent`` names, read back through the propagator."""
    if not traceparent:
        return None
    ctx = trace.get_current_span(context_from_headers({TRACEPARENT: traceparent})).get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def publish_span(
    tracer: Tracer, topic: str, traceparent: str | None, attributes: Mapping[str, str | int]
) -> str | None:
    """Record a ``send {topic}`` span under the stored context; returns the traceparent to
    send with the record. Started and ended here, never made current: the relay publishes
    hundreds of rows a batch, and attaching each to the context cost a third of the span."""
    parent = context_from_headers({TRACEPARENT: traceparent} if traceparent else None)
    span = tracer.start_span(
        f"send {topic}",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": topic,
            **({FLOW: flow} if (flow := flow_of(topic)) else {}),
            **attributes,
        },
    )
    span.end()
    return traceparent_of(span)


def traceparent_of(span: trace.Span) -> str | None:
    """W3C ``traceparent`` of ``span`` as the global propagator writes it (its own sampled
    flag); None for an invalid (empty) context."""
    return carrier_of(trace.set_span_in_context(span)).get(TRACEPARENT)


# -- HTTP ---------------------------------------------------------------------------------------

# URL and peer attributes the ASGI instrumentation records as sent: a path or a query may name a
# person (``/v1/users/{username}``), a peer address is one. The server span keeps the route
# template in their place (``_scrub_server_span``); the span name is the template already.
_URL_ATTRIBUTES = ("http.target", "url.path", "http.url", "url.full")
_PEER_ATTRIBUTES = ("net.peer.ip", "client.address", "net.sock.peer.addr", "network.peer.address", "url.query")


def _scrub_server_span(span: trace.Span, scope: dict[str, Any]) -> None:
    if not span.is_recording():
        return
    attributes: Mapping[str, Any] = getattr(span, "attributes", None) or {}
    route = attributes.get("http.route") or scope.get("lampo.route") or ""
    for name in _URL_ATTRIBUTES:
        if name in attributes:
            span.set_attribute(name, str(route))
    for name in _PEER_ATTRIBUTES:
        if name in attributes:
            span.set_attribute(name, "")


def instrument_fastapi(app: Any, provider: TracerProvider) -> None:
    """Server spans for a FastAPI app (OpenTelemetry's FastAPI instrumentation), named after the
    route template (``GET /v1/requests/{request_id}``), the trace context read from the request."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    if getattr(app, "_is_instrumented_by_opentelemetry", False):  # one app mounted at two prefixes
        return
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        server_request_hook=_scrub_server_span,
        exclude_spans=["receive", "send"],  # one span a request, not one per ASGI message
    )


def instrument_asgi(app: Any, route: str, provider: TracerProvider) -> Any:
    """A plain ASGI route (not FastAPI) wrapped in OpenTelemetry's ASGI middleware, its spans
    named ``<METHOD> <route>``."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    def details(scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        scope["lampo.route"] = route
        return f"{scope.get('method', 'HTTP')} {route}", {"http.route": route}

    return OpenTelemetryMiddleware(
        app,
        tracer_provider=provider,
        default_span_details=details,
        server_request_hook=_scrub_server_span,
        exclude_spans=["receive", "send"],
    )


def instrument_httpx(provider: TracerProvider) -> None:
    """Client spans and trace-context injection for every httpx client of the process
    (OpenTelemetry's httpx instrumentation). Once a process: the first runtime's provider
    records them (a service runs one runtime a process; tests that build several in one process
    see their client spans under the first)."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)
