"""A flood of 10,000 invalid records mixed with valid ones on registry.inbound.v1: every valid
customer is stored once, and the dead-letter topic holds exactly the invalid records, each once,
unchanged, with its named reason and a detail that quotes no personal data."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from aiokafka import ConsumerRecord
from faultkit import database, header, query, read_topic
from suite import Suite

from lampo.contracts.catalog import REGISTRY_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.messaging.topics import dlq
from lampo.testing import Producer, customer_upserted, eventually, synthetic_identity_code

VALID = 1_000
INVALID = {  # reason -> how many
    "invalid_json": 2_500,
    "schema": 2_500,
    "unknown_type": 2_500,
    "invalid_personal_identity_code": 2_000,
    "unknown_customer": 500,  # well-formed, rejected by the registry's handler
}
BASE_N = 5_000  # identity codes of this test's valid customers: n in [5000, 6000)


def invalid(reason: str, key: str, i: int) -> bytes:
    upsert = json.loads(customer_upserted(key, BASE_N + VALID + i).to_bytes())
    if reason == "invalid_json":
        return upsert_bytes(upsert)[: 40 + i % 50]  # cut short
    if reason == "schema":
        del upsert["data"]["customer_number"]
    elif reason == "unknown_type":
        upsert["type"] = "customer.teleported"
    elif reason == "invalid_personal_identity_code":
        code = upsert["data"]["person"]["personal_identity_code"]
        upsert["data"]["person"]["personal_identity_code"] = code[:-1] + ("Y" if code[-1] != "Y" else "X")
    elif reason == "unknown_customer":
        return CloudEvent.new(
            "customer.relationship_ended",
            "urn:system:crm",
            {"customer_number": key, "ended_at": datetime.now(UTC)},
        ).to_bytes()
    return upsert_bytes(upsert)


def upsert_bytes(body: dict[str, object]) -> bytes:
    return json.dumps(body).encode()


@pytest.mark.timeout(900)  # the DLQ copies are published one by one: ~35/s on a loaded 2-core machine
async def test_a_flood_of_invalid_records_is_dead_lettered_exactly_and_the_valid_ones_stored(suite: Suite) -> None:
    run = uuid.uuid4().hex[:6]
    valid = {f"fld{run}-v{i:05d}": customer_upserted(f"fld{run}-v{i:05d}", BASE_N + i) for i in range(VALID)}
    bad: dict[str, tuple[str, bytes]] = {}
    for reason, count in INVALID.items():
        for _ in range(count):
            key = f"fld{run}-x{len(bad):05d}"
            bad[key] = (reason, invalid(reason, key, len(bad)))
    items = [(k, e.to_bytes()) for k, e in valid.items()] + [(k, v) for k, (_, v) in bad.items()]
    random.Random(run).shuffle(items)
    async with Producer() as systems:
        for start in range(0, len(items), 1000):
            await systems.send_many(REGISTRY_INBOUND, items[start : start + 1000])

    registry = database(suite, "registry")
    prefix = f"fld{run}-"

    async def dead_lettered() -> list[ConsumerRecord[bytes, bytes]]:
        return [r for r in await read_topic(dlq(REGISTRY_INBOUND)) if (r.key or b"").decode().startswith(prefix)]

    async def all_through() -> bool:
        [row] = await query(registry, "SELECT count(*) AS n FROM customers WHERE customer_number LIKE $1", prefix + "%")
        return row["n"] >= VALID and len(await dead_lettered()) >= len(bad)

    await eventually(all_through, timeout=780, interval=5)
    await asyncio.sleep(3)  # anything still arriving (a second copy) is counted below

    # exact final state: the valid customers, each event handled once
    rows = await query(registry, "SELECT customer_number FROM customers WHERE customer_number LIKE $1", prefix + "%")
    assert sorted(r["customer_number"] for r in rows) == sorted(valid)
    handled = await query(
        registry,
        "SELECT event_id FROM inbox WHERE consumer = $1 AND event_id = ANY($2::text[])",
        f"registry:{REGISTRY_INBOUND}",
        [e.id for e in valid.values()],
    )
    assert len(handled) == VALID

    # the DLQ: exactly the invalid records, each once, unchanged, with its reason
    dead = await dead_lettered()
    keys = Counter((r.key or b"").decode() for r in dead)
    assert sorted(keys) == sorted(bad) and set(keys.values()) == {1}
    for record in dead:
        reason, value = bad[record.key.decode()]
        assert record.value == value
        assert header(record, "error.reason") == reason
        assert header(record, "error.topic") == REGISTRY_INBOUND
        detail = header(record, "error.detail") or ""
        assert detail
        n = BASE_N + VALID + int(record.key.decode().rsplit("x", 1)[1])
        assert synthetic_identity_code(n)[:6] not in detail and f"Asiakas{n}" not in detail
    assert Counter(header(r, "error.reason") for r in dead) == Counter(INVALID)
