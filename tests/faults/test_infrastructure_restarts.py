"""The broker and the database restarted under ingest load: every customer sent is stored once,
its event handled once (inbox), its change announced once (one event id), nothing dead-lettered."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable

from conftest import Infrastructure
from faultkit import StubbornSystem, data, database, query, read_topic
from suite import Suite

from lampo.contracts.catalog import REGISTRY_EVENTS, REGISTRY_INBOUND
from lampo.messaging.topics import dlq
from lampo.testing import customer_upserted, eventually

N = 1500
PER_SECOND = 100  # 15 s of load; the fault lands 4 s in
CONSUMER = f"registry:{REGISTRY_INBOUND}"


async def ingest_across(suite: Suite, prefix: str, base_n: int, fault: Callable[[], Awaitable[None]]) -> None:
    prefix = f"{prefix}{uuid.uuid4().hex[:6]}-"  # this run's customers only
    numbers = [f"{prefix}{i:05d}" for i in range(N)]
    ids = [str(uuid.uuid4()) for _ in range(N)]
    items = [(number, customer_upserted(number, base_n + i, event_id=ids[i])) for i, number in enumerate(numbers)]
    system = StubbornSystem(REGISTRY_INBOUND, list(items), per_second=PER_SECOND)
    sending = asyncio.create_task(system.run())
    try:
        await asyncio.sleep(4)
        assert not sending.done() and 0 < system.sent < N, "the fault must land while the load runs"
        await fault()
        await asyncio.wait_for(sending, timeout=300)
    finally:
        sending.cancel()
    assert system.sent == N

    registry = database(suite, "registry")

    async def stored() -> bool:
        [row] = await query(registry, "SELECT count(*) AS n FROM customers WHERE customer_number LIKE $1", f"{prefix}%")
        return bool(row["n"] == N)

    await eventually(stored, timeout=180, interval=1)

    # exactly the sent customers, each event handled once, each with the same sections
    rows = await query(registry, "SELECT customer_number FROM customers WHERE customer_number LIKE $1", f"{prefix}%")
    assert sorted(r["customer_number"] for r in rows) == numbers
    handled = await query(
        registry, "SELECT event_id FROM inbox WHERE consumer = $1 AND event_id = ANY($2::text[])", CONSUMER, ids
    )
    assert sorted(r["event_id"] for r in handled) == sorted(ids)
    sections = await query(
        registry,
        "SELECT count(*) AS n FROM sections WHERE customer_number LIKE $1 GROUP BY customer_number",
        f"{prefix}%",
    )
    assert len(sections) == N and len({r["n"] for r in sections}) == 1
    lookups = await query(
        registry, "SELECT kind, count(*) AS n FROM lookup WHERE customer_number LIKE $1 GROUP BY kind", f"{prefix}%"
    )
    assert lookups and {r["n"] for r in lookups} == {N}  # one blind index of each kind per customer

    # one change notice per customer (relayed at least once; one event id), all relayed
    async def announced() -> dict[str, set[str]]:
        notices: dict[str, set[str]] = defaultdict(set)
        for record in await read_topic(REGISTRY_EVENTS):
            body = data(record)
            number = body["data"].get("customer_number") or ""
            if body["type"] == "subject.changed" and number.startswith(prefix):
                notices[number].add(body["id"])
        return notices if len(notices) == N else {}

    notices = await eventually(announced, timeout=120, interval=2)
    assert sorted(notices) == numbers
    assert {len(ids) for ids in notices.values()} == {1}, "a customer's change was announced as two events"
    [outbox] = await query(registry, "SELECT count(*) AS n FROM outbox")
    assert outbox["n"] == 0

    # an outage is not the records' fault: none of them was dead-lettered
    dead = [r for r in await read_topic(dlq(REGISTRY_INBOUND)) if (r.key or b"").decode().startswith(prefix)]
    assert dead == []


async def test_the_broker_restarted_under_ingest_load_loses_and_doubles_nothing(
    suite: Suite, infrastructure: Infrastructure
) -> None:
    async def restart_broker() -> None:
        await infrastructure.stop_kafka()
        await infrastructure.start_kafka()

    await ingest_across(suite, "brk", 0, restart_broker)


async def test_postgresql_restarted_under_ingest_load_loses_and_doubles_nothing(
    suite: Suite, infrastructure: Infrastructure
) -> None:
    async def restart_database() -> None:
        await infrastructure.stop_postgres()
        await asyncio.sleep(2)
        await infrastructure.start_postgres()

    await ingest_across(suite, "pgr", N, restart_database)
