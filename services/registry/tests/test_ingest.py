"""The registry on the real broker and database: store, announce, trace, dead-letter, deduplicate."""

from __future__ import annotations

import json

from opentelemetry.trace import SpanKind

from lampo.contracts.catalog import REGISTRY_EVENTS, REGISTRY_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.messaging.topics import dlq
from lampo.testing import Producer, TopicReader, customer_upserted, eventually, header, synthetic_identity_code
from lampo.tracing import trace_id_of

from .helpers import dead_letters, new_customer_number, ours

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_upsert_is_stored_and_announced_in_the_same_trace(registry) -> None:
    customer = new_customer_number()
    event = customer_upserted(customer, 11)
    async with TopicReader(REGISTRY_EVENTS) as notices, Producer() as producer:
        await producer.send(REGISTRY_INBOUND, customer, event, traceparent=f"00-{TRACE_ID}-00f067aa0ba902b7-01")
        [notice] = await ours(registry, notices, customer)

    body = json.loads(notice.value)
    assert body["type"] == "subject.changed"
    assert set(body["data"]["categories"]) == {"basic", "contact"}
    assert trace_id_of(header(notice, "traceparent")) == TRACE_ID
    assert notice.key.decode() == body["data"]["subject_id"]  # pseudonymous key, not the customer number
    # no personal data in the notice
    assert "Asiakas11" not in notice.value.decode() and "example.fi" not in notice.value.decode()

    async with registry.runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT section, payload FROM sections WHERE customer_number = $1 AND payload IS NOT NULL", customer
        )
    assert {r["section"] for r in rows} == {"person", "contact", "metering_points", "account"}
    # stored encrypted: the identity code is nowhere in clear
    assert all(synthetic_identity_code(11).encode() not in bytes(r["payload"]) for r in rows)

    spans = registry.spans.get_finished_spans()
    [process] = [
        s for s in spans if s.name == f"process {REGISTRY_INBOUND}" and format(s.context.trace_id, "032x") == TRACE_ID
    ]
    assert process.kind == SpanKind.CONSUMER
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.attributes["messaging.destination.name"] == REGISTRY_INBOUND
    assert process.attributes["lampo.flow"] == "bulk"  # sampled by LAMPO_TRACE_SAMPLE_RATIO
    # A lone record's statements are spans under its process span: parameterised, no values.
    sql = [
        s
        for s in spans
        if s.parent is not None and s.parent.span_id == process.context.span_id and s.kind == SpanKind.CLIENT
    ]
    assert sql and all(s.attributes["db.system.name"] == "postgresql" for s in sql)
    assert any("$1" in str(s.attributes["db.query.text"]) for s in sql)
    values = " ".join(str(v) for s in sql for v in s.attributes.values())
    assert customer not in values and synthetic_identity_code(11) not in values


async def test_bad_records_are_dead_lettered_with_reasons_and_the_next_one_is_processed(registry) -> None:
    customer = new_customer_number()
    good = customer_upserted(customer, 12)
    schema_invalid = CloudEvent.new(
        "customer.upserted", "urn:system:crm", {"customer_number": customer, "kind": "robot"}
    )
    bad_pic = json.loads(customer_upserted(customer, 13).to_bytes())
    bad_pic["data"]["person"]["personal_identity_code"] = "131052-308U"  # wrong check character
    unknown = CloudEvent.new("customer.teleported", "urn:system:crm", {"customer_number": customer})

    async with (
        TopicReader(dlq(REGISTRY_INBOUND)) as dead,
        TopicReader(REGISTRY_EVENTS) as notices,
        Producer() as producer,
    ):
        await producer.send(REGISTRY_INBOUND, customer, b"{not json")
        await producer.send(REGISTRY_INBOUND, customer, schema_invalid)
        await producer.send(REGISTRY_INBOUND, customer, json.dumps(bad_pic).encode())
        await producer.send(REGISTRY_INBOUND, customer, unknown)
        await producer.send(REGISTRY_INBOUND, customer, good)
        records = await dead_letters(dead, {customer.encode()}, 4)
        await ours(registry, notices, customer)

    reasons = [header(r, "error.reason") for r in records]
    assert reasons == ["invalid_json", "schema", "invalid_personal_identity_code", "unknown_type"]
    assert records[0].value == b"{not json"  # copied unchanged
    detail = header(records[2], "error.detail") or ""
    assert "personal_identity_code" in detail and "131052" not in detail  # names the field, not the value
    assert registry.consumer.stats.dead_lettered == {
        "invalid_json": 1,
        "schema": 1,
        "invalid_personal_identity_code": 1,
        "unknown_type": 1,
    }


async def test_the_same_event_twice_has_one_effect(registry) -> None:
    customer = new_customer_number()
    event = customer_upserted(customer, 14)
    async with TopicReader(REGISTRY_EVENTS) as notices, Producer() as producer:
        await producer.send(REGISTRY_INBOUND, customer, event)
        await producer.send(REGISTRY_INBOUND, customer, event)
        [subject_id] = {json.loads(r.value)["data"]["subject_id"] for r in await ours(registry, notices, customer)}
        await eventually(lambda: registry.consumer.stats.duplicates >= 1)
        later = await notices.quiet(1.0)

    assert len([r for r in later if json.loads(r.value)["data"]["subject_id"] == subject_id]) == 1
    async with registry.runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM customers WHERE customer_number = $1", customer) == 1
        assert await conn.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", event.id) == 1


async def test_an_older_event_does_not_overwrite_a_newer_one(registry) -> None:
    from datetime import UTC, datetime, timedelta

    customer = new_customer_number()
    now = datetime.now(UTC)
    newer = customer_upserted(customer, 15, email="new@example.fi", time=now)
    older = customer_upserted(customer, 15, email="old@example.fi", time=now - timedelta(hours=1))
    async with Producer() as producer:
        await producer.send(REGISTRY_INBOUND, customer, newer)
        await producer.send(REGISTRY_INBOUND, customer, older)
    await eventually(lambda: registry.consumer.stats.processed >= 2)

    async with registry.runtime.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT subject_id, payload FROM sections WHERE customer_number = $1 AND section = 'contact'", customer
        )
        cipher = await registry.runtime.keys.cipher(conn, row["subject_id"])
    assert json.loads(cipher.decrypt("contact", bytes(row["payload"])) or "")["email"] == "new@example.fi"
