"""The sampler (privacy flows always, bulk ingest by LAMPO_TRACE_SAMPLE_RATIO, children follow
their parent), propagation through the global propagator (never a forced sampled flag), and the
SQL spans of a pool (under an active span only; the statement, never its parameters)."""

from __future__ import annotations

import uuid

import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from lampo.db import create_pool
from lampo.db.pool import server_url_of
from lampo.messaging.topics import TOPIC_NAMES
from lampo.testing import PG_URL
from lampo.tracing import (
    BULK,
    BULK_TOPICS,
    FLOW,
    PRIVACY,
    PRIVACY_TOPICS,
    TRACEPARENT,
    context_from_headers,
    flow_of,
    make_sampler,
    make_tracer_provider,
    sample_ratio,
    traceparent_of,
)

N = 2000


def provider(ratio: float) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return make_tracer_provider("lampo-test", [SimpleSpanProcessor(exporter)], sample_ratio=ratio), exporter


def flags(traceparent: str) -> int:
    """The trace-flags byte (bit 0: sampled; the sdk also sets bit 1, a random trace id)."""
    return int(traceparent.rsplit("-", 1)[1], 16)


def sampled(span: trace.Span) -> bool:
    return span.get_span_context().trace_flags.sampled


def test_privacy_flows_and_http_requests_are_always_sampled_bulk_by_the_ratio() -> None:
    tracer = provider(0.0)[0].get_tracer("t")
    assert all(sampled(tracer.start_span("process dsar.requests.v1", attributes={FLOW: PRIVACY})) for _ in range(50))
    assert all(sampled(tracer.start_span("POST /v1/dsar/requests", kind=SpanKind.SERVER)) for _ in range(50))
    assert not any(
        sampled(tracer.start_span("process registry.inbound.v1", attributes={FLOW: BULK})) for _ in range(50)
    )
    assert not any(sampled(tracer.start_span("something else")) for _ in range(50))

    tracer = provider(0.25)[0].get_tracer("t")
    kept = sum(sampled(tracer.start_span("process billing.inbound.v1", attributes={FLOW: BULK})) for _ in range(N))
    assert 0.18 * N < kept < 0.32 * N, kept

    tracer = provider(1.0)[0].get_tracer("t")
    assert all(sampled(tracer.start_span("process registry.inbound.v1", attributes={FLOW: BULK})) for _ in range(50))


def test_children_follow_their_parent_and_a_privacy_span_is_kept_under_an_unsampled_remote_parent() -> None:
    tracer = provider(0.0)[0].get_tracer("t")
    with tracer.start_as_current_span("dsar submit", attributes={FLOW: PRIVACY}) as parent:
        assert sampled(tracer.start_span("child of no flow", attributes={FLOW: BULK}))
        stored = traceparent_of(parent)
    with tracer.start_as_current_span("bulk", attributes={FLOW: BULK}) as bulk:
        assert not sampled(tracer.start_span("local child", attributes={FLOW: PRIVACY}))  # in process: one decision
        unsampled = traceparent_of(bulk)
    # Across Kafka (a remote parent): a sampled record's trace continues, whatever its flow ...
    remote = context_from_headers({TRACEPARENT: stored or ""})
    assert sampled(tracer.start_span("process registry.events.v1", context=remote, attributes={FLOW: BULK}))
    # ... and an unsampled one's only where a privacy flow starts (a withdrawal caused by ingest).
    remote = context_from_headers({TRACEPARENT: unsampled or ""})
    assert sampled(tracer.start_span("process consent.inbound.v1", context=remote, attributes={FLOW: PRIVACY}))
    assert not sampled(tracer.start_span("process registry.events.v1", context=remote, attributes={FLOW: BULK}))
    assert not sampled(tracer.start_span("send registry.events.v1", context=remote, kind=SpanKind.PRODUCER))


def test_the_stored_traceparent_is_the_propagators_with_the_spans_own_sampled_flag() -> None:
    tracer = provider(0.0)[0].get_tracer("t")
    kept = tracer.start_span("p", attributes={FLOW: PRIVACY})
    dropped = tracer.start_span("b", attributes={FLOW: BULK})
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(kept))
    assert traceparent_of(kept) == carrier[TRACEPARENT] and flags(carrier[TRACEPARENT]) & 1
    assert not flags(traceparent_of(dropped) or "") & 1  # never forced to sampled
    assert traceparent_of(trace.INVALID_SPAN) is None
    back = trace.get_current_span(context_from_headers([(TRACEPARENT, (traceparent_of(kept) or "").encode())]))
    assert back.get_span_context().trace_id == kept.get_span_context().trace_id


def test_topic_flows_and_the_ratio_setting() -> None:
    assert {
        flow_of(t)
        for t in ("dsar.requests.v1", "privacy.tasks.v1", "privacy.acks.v1", "consent.inbound.v1", "retention.holds.v1")
    } == {PRIVACY}
    assert {flow_of(t) for t in ("registry.inbound.v1", "billing.inbound.v1", "recordings.inbound.v1")} == {BULK}
    assert PRIVACY_TOPICS | BULK_TOPICS <= TOPIC_NAMES  # named as declared (a renamed topic fails here)
    assert sample_ratio("") == 1.0 and sample_ratio("0.1") == 0.1
    for bad in ("lots", "1.5", "-0.1"):
        with pytest.raises(ValueError, match="LAMPO_TRACE_SAMPLE_RATIO"):
            sample_ratio(bad)
    assert "privacy" in make_sampler(0.5).get_description().lower()


async def test_sql_spans_are_made_under_an_active_span_only_and_carry_the_statement_not_its_parameters() -> None:
    test_provider, exporter = provider(1.0)
    tracer = test_provider.get_tracer("t")
    pool = await create_pool(server_url_of(PG_URL, "postgres"), min_size=1, max_size=1, tracer=tracer)
    secret = f"131052-{uuid.uuid4().hex[:6]}"
    try:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT $1::text", secret)  # no active span: no SQL span
            assert exporter.get_finished_spans() == ()
            with tracer.start_as_current_span("http", attributes={FLOW: PRIVACY}):
                assert await conn.fetchval("SELECT $1::text", secret) == secret
                await conn.fetch("/* a comment */ select $1::int", 1)
                with pytest.raises(Exception):  # noqa: B017 - any database error
                    await conn.execute("SELECT no_such_column FROM pg_class WHERE relname = $1", secret)
    finally:
        await pool.close()
    spans = [s for s in exporter.get_finished_spans() if s.name != "http"]
    assert [s.name for s in spans] == ["SELECT", "SELECT", "SELECT"]
    assert all(s.kind == SpanKind.CLIENT and s.attributes["db.system.name"] == "postgresql" for s in spans)
    assert spans[0].attributes["db.query.text"] == "SELECT $1::text"
    assert spans[0].attributes["db.namespace"] == "postgres"
    assert spans[2].attributes["error.type"] == "UndefinedColumnError" and not spans[2].events
    assert all(secret not in str(v) for s in exporter.get_finished_spans() for v in s.attributes.values())


async def test_a_transactions_begin_and_the_pools_reset_are_not_spans_its_commit_is() -> None:
    test_provider, exporter = provider(1.0)
    tracer = test_provider.get_tracer("t")
    pool = await create_pool(server_url_of(PG_URL, "postgres"), min_size=1, max_size=1, tracer=tracer)
    try:
        with tracer.start_as_current_span("http", attributes={FLOW: PRIVACY}):
            async with pool.acquire() as conn, conn.transaction():  # released under the span: reset runs
                await conn.fetchval("SELECT 1")
    finally:
        await pool.close()
    assert [s.name for s in exporter.get_finished_spans() if s.name != "http"] == ["SELECT", "COMMIT"]


def test_an_sql_span_is_named_after_the_statements_operation() -> None:
    from lampo.db.tracing import _operation

    assert [_operation(q) for q in ("BEGIN;", "/* x */\n select 1", "  insert into t values ($1)", "", ";")] == [
        "BEGIN", "SELECT", "INSERT", "SQL", "SQL"
    ]  # fmt: skip
