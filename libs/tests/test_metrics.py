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
from lampo.metrics import ServiceMetrics
from lampo.service import Runtime
from lampo.settings import ServiceSettings
from lampo.testing import (
    BOOTSTRAP,
    Producer,
    customer_upserted,
    drop_database,
    eventually,
    metric_sample,
    running,
    unique,
)

# -- rendering (no server) ---------------------------------------------------------------------


def scrape(metrics: ServiceMetrics) -> str:
    return asyncio.run(metrics.render())


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

    text = scrape(metrics)

    assert "# TYPE lampo_dsar_requests_total counter" in text
    assert "# HELP lampo_dsar_requests_total DSARs by kind" in text
    assert 'lampo_dsar_requests_total{kind="access",state="accepted"} 2.0' in text
    assert 'lampo_dsar_requests_total{kind="erasure",state="completed"} 1.0' in text
    assert "# TYPE lampo_dsar_time_to_completion_seconds histogram" in text
    assert 'lampo_dsar_time_to_completion_seconds_bucket{kind="access",le="60.0"} 1.0' in text
    assert 'lampo_dsar_time_to_completion_seconds_bucket{kind="access",le="+Inf"} 2.0' in text
    assert 'lampo_dsar_time_to_completion_seconds_sum{kind="access"} 150.0' in text
    assert 'lampo_dsar_time_to_completion_seconds_count{kind="access"} 2.0' in text
    assert "# TYPE lampo_dsar_overdue gauge" in text  # up-down counters are gauges
    assert "lampo_dsar_overdue 3.0" in text
    # the standard process, platform and garbage-collector metrics ride along
    for name in (
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "python_info",
        "python_gc_collections_total",
    ):
        assert re.search(rf"^{name}(\{{| )", text, re.M), name
    assert re.search(r'^target_info\{.*service_name="lampo-test",service_namespace="lampo"', text, re.M)


def test_each_runtime_has_its_own_registry() -> None:
    """Two services in one process (as in the tests) neither clash nor see each other's series,
    and nothing lands in prometheus_client's global registry."""
    from prometheus_client import REGISTRY

    first, second = ServiceMetrics("lampo-one"), ServiceMetrics("lampo-two")
    first.meter.create_counter("lampo.same.name").add(1)
    second.meter.create_counter("lampo.same.name").add(7)
    assert "lampo_same_name_total 1.0" in scrape(first)
    assert "lampo_same_name_total 7.0" in scrape(second)
    assert REGISTRY.get_sample_value("lampo_same_name_total") is None


def test_exported_names_list_instruments_before_they_have_a_value() -> None:
    metrics = ServiceMetrics("lampo-test")
    metrics.meter.create_histogram("lampo.probe.wait", unit="s")
    metrics.meter.create_observable_counter("lampo.probe.seen", [], unit="{thing}")
    names = metrics.exported_names()
    assert {"lampo_probe_wait_seconds_bucket", "lampo_probe_wait_seconds_count", "lampo_probe_seen_total"} <= names
    assert {"lampo_consumer_dead_lettered_total", "lampo_outbox_backlog", "lampo_consumer_lag"} <= names
    assert {"process_resident_memory_bytes", "python_gc_collections_total"} <= names
    assert "lampo_probe_wait_seconds_bucket" not in scrape(metrics)  # no value yet, still declared


def test_label_values_are_escaped() -> None:
    metrics = ServiceMetrics("lampo-test")
    metrics.provider.get_meter("t").create_counter("odd.values").add(1, {"reason": 'a"b\\c\nd'})
    text = scrape(metrics)
    assert 'odd_values_total{reason="a\\"b\\\\c\\nd"} 1.0' in text


# -- a small service on the real broker and database --------------------------------------------


class ProbeSettings(ServiceSettings):
    service: ClassVar[str] = "metricsprobe"
    default_http_port: ClassVar[int] = 8199


sample = metric_sample


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
    settings = ProbeSettings(
        database=unique("test_metrics"), consumer_group=unique("test-metrics"), master_key=new_master_key()
    )
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
                await eventually(
                    lambda: consumer.stats.processed == 1 and sum(consumer.stats.dead_lettered.values()) == 1
                )
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
    assert sample(text, "lampo_outbox_backlog") == 0  # relayed: nothing waits
    assert (sample(text, "lampo_consumer_batch_duration_seconds_count", **labels) or 0) >= 3
    # no personal data in any label: only the technical names above
    lampo_lines = "\n".join(line for line in text.splitlines() if line.startswith("lampo_"))
    label_names = set(re.findall(r'([a-zA-Z_]+)="', lampo_lines))
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


async def test_http_request_durations_are_a_histogram_by_route_template() -> None:
    """The route label is the template the app matched, never the path with its values."""
    from fastapi import FastAPI

    api = FastAPI()

    @api.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    runtime = Runtime(ProbeSettings(master_key=new_master_key()), migrations=None, mounts=[("/v1", api)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.app), base_url="http://probe") as http:
        assert (await http.get("/v1/things/secret-value")).status_code == 200
        assert (await http.get("/v1/nowhere")).status_code == 404
        text = (await http.get("/metrics")).text
    name = "http_server_request_duration_seconds_count"
    assert (
        sample(
            text, name, http_route="/v1/things/{thing_id}", http_response_status_code="200", http_request_method="GET"
        )
        == 1
    )
    assert sample(text, name, http_route="unmatched", http_response_status_code="404") == 1
    assert "secret-value" not in text
