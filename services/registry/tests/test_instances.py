"""Two registry instances in one consumer group: one identity code is one subject, whichever
instance sees which of its customer numbers."""

from __future__ import annotations

import asyncio
from typing import Any

from lampo.contracts.catalog import REGISTRY_INBOUND
from lampo.registry.app import build
from lampo.service import Runtime
from lampo.testing import Producer, customer_upserted, drop_database, eventually, running

from .conftest import fast_forward, registry_settings
from .helpers import new_customer_number, organisation_upserted


def inbound_partitions(runtime: Runtime) -> set[int]:
    """The partitions of registry.inbound.v1 this instance is assigned now."""
    assigned: set[int] = set()
    for subscriber in runtime._kafka_consumers.values():  # the split of the group
        client: Any = getattr(subscriber, "consumer", None)
        if client is not None:
            assigned |= {tp.partition for tp in client.assignment() if tp.topic == REGISTRY_INBOUND}
    return assigned


async def test_one_identity_code_is_one_subject_across_two_instances() -> None:
    settings = registry_settings()
    await fast_forward(settings.consumer_group or "")
    first, second = build(settings), build(settings)
    pairs = 150
    people = [(new_customer_number(), new_customer_number(), 4000 + n) for n in range(pairs)]
    organisations = [(new_customer_number(), new_customer_number(), bid) for bid in _business_ids(1572860, 30)]
    try:
        async with running(first.app), running(second.app):
            # Both instances share the topic's partitions before anything is sent.
            await eventually(lambda: _split(inbound_partitions(first), inbound_partitions(second)), timeout=60)
            records: list[tuple[str | None, bytes]] = []
            for a, b, n in people:  # one person under two customer numbers at once
                records += [(a, customer_upserted(a, n).to_bytes()), (b, customer_upserted(b, n).to_bytes())]
            for a, b, bid in organisations:  # one organisation under two
                records += [
                    (a, organisation_upserted(a, bid).to_bytes()),
                    (b, organisation_upserted(b, bid).to_bytes()),
                ]
            async with Producer() as producer:
                await producer.send_many(REGISTRY_INBOUND, records)

            async def stored() -> bool:
                async with first.pool.acquire() as conn:
                    return int(await conn.fetchval("SELECT count(*) FROM customers")) == len(records)

            await eventually(stored, timeout=90)
            async with first.pool.acquire() as conn:
                split = await conn.fetch(
                    "SELECT kind, digest, count(DISTINCT subject_id) AS subjects FROM lookup"
                    " WHERE kind IN ('personal_identity_code', 'business_id')"
                    " GROUP BY kind, digest HAVING count(DISTINCT subject_id) > 1"
                )
                subjects = await conn.fetchval("SELECT count(*) FROM subjects")
                per_kind = await conn.fetch(
                    "SELECT kind, count(DISTINCT digest) AS codes FROM lookup GROUP BY kind ORDER BY kind"
                )
        assert [(r["kind"], r["subjects"]) for r in split] == []
        assert subjects == pairs + len(organisations)
        codes = {r["kind"]: r["codes"] for r in per_kind}
        assert codes["personal_identity_code"] == pairs and codes["business_id"] == len(organisations)
    finally:
        await asyncio.sleep(0)
        await drop_database(settings.database or "")


def _split(one: set[int], other: set[int]) -> bool:
    return bool(one) and bool(other) and not one & other


def _business_ids(start: int, count: int) -> list[str]:
    """``count`` valid Finnish business IDs (Y-tunnus) from ``start`` on."""
    found: list[str] = []
    number = start
    while len(found) < count:
        digits = f"{number:07d}"
        remainder = sum(int(d) * w for d, w in zip(digits, (7, 9, 10, 5, 8, 4, 2), strict=True)) % 11
        if remainder != 1:
            found.append(f"{digits}-{0 if remainder == 0 else 11 - remainder}")
        number += 1
    return found
