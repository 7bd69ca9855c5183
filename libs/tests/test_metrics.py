"""Metrics: the Prometheus rendering of SDK data, and a small Runtime-based service on the real
broker and database whose /metrics reports what its consumer did."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import ClassVar

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from lampo.contracts import catalog
from lampo.contracts.catalog import REGISTRY_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.crypto import new_master_key
from lampo.messaging import outbox
from lampo.messaging.consumer import ConsumerOptions, Incoming, per_event
from lampo.messaging.topics import dlq
from lampo.metrics import ServiceMetrics, render_prometheus
from lampo.service import Runtime
from lampo.settings import ServiceSettings
from lampo.testing import BOOTSTRAP, Producer, customer_upserted, drop_database, eventually, running, unique

# -- rendering (no server) ---------------------------------------------------------------------


def test_counters_gauges_and_histograms_render_as_prometheus_text() -> None:
    metrics = ServiceMetrics("lampo-test")
    meter = metrics.provider.get_meter("lampo.test")
    requests = meter.create_counter("lampo.dsar.requests", unit="{request}", description="DSARs by kind")
    requests.add(2, {"kind": "access", "state": "accepted"})
    requests.add(1, {"kind": "erasure", "state": "completed"})
    duration = meter.create_histogram(
        "lampo.dsar.time_to_completion", unit="s", explicit_bucket_boundaries_advisory=[60.0, 3600.0]
    )
    duration.record(30, {"kind": "access"})
    duration.record(120, {"kind": "access"})
    overdue = meter.create_up_down_counter("lampo.dsar.overdue", unit="{request}")
    overdue.add(3)

    text = render_prometheus(metrics.reader.get_metrics_data())

    assert "# TYPE lampo_dsar_requests_total counter" in text
    assert "# HELP lampo_dsar_requests_total DSARs by kind" in text
    assert 'lampo_dsar_requests_total{kind="access",state="accepted"} 2' in text
    assert 'lampo_dsar_requests_total{kind="erasure",state="completed"} 1' in text
    assert "# TYPE lampo_dsar_time_to_completion_seconds histogram" in text
    assert 'lampo_dsar_time_to_completion_seconds_bucket{kind="access",le="60.0"} 1' in text
    assert 'lampo_dsar_time_to_completion_seconds_bucket{kind="access",le="+Inf"} 2' in text
    assert 'lampo_dsar_time_to_completion_seconds_sum{kind="access"} 150' in text
    assert 'lampo_dsar_time_to_completion_seconds_count{kind="access"} 2' in text
    assert "# TYPE lampo_dsar_overdue gauge" in text  # up-down counters are gauges
    assert "lampo_dsar_overdue 3" in text


def test_label_values_are_escaped() -> None:
    metrics = ServiceMetrics("lampo-test")
    metrics.provider.get_meter("t").create_counter("odd.values").add(1, {"reason": 'a"b\\c\nd'})
    text = render_prometheus(metrics.reader.get_metrics_data())
    assert 'odd_values_total{reason="a\\"b\\\\c\\nd"} 1' in text


# -- a small service on the real broker and database --------------------------------------------


class ProbeSettings(ServiceSettings):
    service: ClassVar[str] = "metricsprobe"
    default_http_port: ClassVar[int] = 8199


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, matching the given labels (others ignored)."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(4))
    return None


@pytest.fixture
async def topics(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[str, str]]:
    """A private input topic (read with the registry inbound contract), its DLQ, and an output topic,
    so nothing else publishing to the shared topics can change the counts."""
    name = f"test.metrics.{uuid.uuid4().hex[:10]}"
    out = f"{name}.out"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, num_partitions=2, replication_factor=1) for t in (name, dlq(name), out)])
        await eventually(lambda: _listed(admin, {name, dlq(name), out}), timeout=20)
        monkeypatch.setitem(catalog.EVENT_TYPES, name, catalog.EVENT_TYPES[REGISTRY_INBOUND])
        yield name, out
    finally:
        await admin.delete_topics([name, dlq(name), out])
        await admin.close()


async def _listed(admin: AIOKafkaAdminClient, names: set[str]) -> bool:
    return names <= set(await admin.list_topics())


async def test_metrics_endpoint_reports_consumer_outbox_and_lag(topics: tuple[str, str]) -> None:
    topic, out = topics
    settings = ProbeSettings(database=unique("test_metrics"), consumer_group=unique("test-metrics"), master_key=new_master_key())
    runtime = Runtime(settings, migrations=None)

    async def handle(conn, item: Incoming) -> None:  # type: ignore[no-untyped-def]
        if item.event.data.customer_number == "999":
            raise RuntimeError("poison")
        notice = CloudEvent.new("test.noticed", "urn:lampo:test", {"customer_number": item.event.data.customer_number})
        await outbox.add(conn, [outbox.OutgoingEvent(out, item.event.data.customer_number, notice)])

    consumer = runtime.consume(topic, per_event(handle), options=ConsumerOptions(retries=1, backoff_s=0.01))
    runtime.meter.create_counter("lampo.metricsprobe.custom", unit="{thing}").add(5, {"kind": "probe"})
    transport = httpx.ASGITransport(app=runtime.app)
    try:
        async with running(runtime.app), httpx.AsyncClient(transport=transport, base_url="http://probe") as http:
            ready = await eventually(lambda: _ready(http), timeout=30)
            assert ready["consumers"] == {"joined": 1, "total": 1, "partitions": 2}

            good = customer_upserted("101", 1)
            async with Producer() as producer:
                await producer.send(topic, "101", good)
                await producer.send(topic, "102", b"{not json")
                await eventually(lambda: consumer.stats.processed == 1 and sum(consumer.stats.dead_lettered.values()) == 1)
                await producer.send(topic, "101", good)  # redelivered: the inbox knows it
                await eventually(lambda: consumer.stats.duplicates == 1)
                await producer.send(topic, "999", customer_upserted("999", 2))
                await eventually(lambda: consumer.stats.dead_lettered.get("processing_failed") == 1)
            await eventually(lambda: runtime.relay is not None and runtime.relay.sent == 1)

            async def scraped() -> str | None:
                response = await http.get("/metrics")
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
                # lag is known once a fetch answered for each partition; all consumed means 0
                lags = [sample(response.text, "lampo_consumer_lag", topic=topic, partition=str(p)) for p in (0, 1)]
                return response.text if lags == [0.0, 0.0] else None

            text = await eventually(scraped, timeout=20, interval=0.3)
    finally:
        await drop_database(settings.database or "")

    labels = {"consumer": f"metricsprobe:{topic}", "topic": topic, "group": consumer.group_id}
    assert sample(text, "lampo_consumer_processed_total", **labels) == 1
    assert sample(text, "lampo_consumer_duplicates_total", **labels) == 1
    assert sample(text, "lampo_consumer_retried_total", **labels) == 2  # two failed attempts, then the DLQ
    assert sample(text, "lampo_consumer_dead_lettered_total", **labels, reason="invalid_json") == 1
    assert sample(text, "lampo_consumer_dead_lettered_total", **labels, reason="processing_failed") == 1
    assert sample(text, "lampo_outbox_sent_total") == 1
    assert sample(text, "lampo_outbox_relay_active") == 1  # the one relay of its database
    assert sample(text, "lampo_metricsprobe_custom_total", kind="probe") == 5
    # no personal data in any label: only the technical names above
    label_names = set(re.findall(r'([a-zA-Z_]+)="', text))
    assert label_names <= {"consumer", "topic", "group", "reason", "partition", "kind", "le"}
    assert "Testi" not in text and "example.fi" not in text


async def _ready(http: httpx.AsyncClient) -> dict[str, object] | None:
    response = await http.get("/health/ready")
    body = json.loads(response.text)
    return body if response.status_code == 200 else None


async def test_readiness_reports_consumers_even_before_start() -> None:
    runtime = Runtime(ProbeSettings(master_key=new_master_key()), migrations=None)
    runtime.consume("registry.inbound.v1", per_event(lambda conn, item: asyncio.sleep(0)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.app), base_url="http://probe") as http:
        response = await http.get("/health/ready")
    assert response.status_code == 503
    assert json.loads(response.text)["consumers"] == {"joined": 0, "total": 1, "partitions": 0}
