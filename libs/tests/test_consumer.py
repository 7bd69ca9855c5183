"""The reliable consumer on the real broker and database: a rejected record and a record that
keeps failing are dead-lettered with their reasons, a transient failure is retried with backoff
and then succeeds once, and the records around them are processed; a failed batch is narrowed
down by halves, not re-applied one transaction per record."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import BaseModel

from lampo.contracts.catalog import parser_for
from lampo.contracts.envelope import CloudEvent
from lampo.crypto import new_master_key
from lampo.messaging.consumer import ConsumerOptions, Incoming, Rejected, ReliableConsumer, per_event
from lampo.messaging.topics import TopicSpec, dlq, provision
from lampo.service import Runtime
from lampo.settings import ServiceSettings
from lampo.testing import (
    BOOTSTRAP,
    Producer,
    TopicReader,
    drop_database,
    eventually,
    fast_forward_group,
    header,
    running,
    unique,
)

TOPIC = "lampo.selftest.v1"


class Happened(BaseModel):
    n: int
    mode: str


class SelfTestSettings(ServiceSettings):
    service: ClassVar[str] = "selftest"


attempts: Counter[int] = Counter()


keys: dict[int, str | None] = {}


async def handle(conn: asyncpg.Connection, item: Incoming) -> None:
    data = item.event.data
    assert isinstance(data, Happened)
    attempts[data.n] += 1
    keys[data.n] = item.key  # as handlers use it (a span attribute, a fallback id)
    if data.mode == "reject":
        raise Rejected("not_acceptable", "data.mode: this record is refused on purpose")
    if data.mode == "broken":
        raise ValueError("always fails")
    if data.mode == "flaky" and attempts[data.n] < 3:
        raise RuntimeError("fails twice, then works")
    await conn.execute("INSERT INTO effects (n) VALUES ($1)", data.n)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[ReliableConsumer]:
    await provision(
        BOOTSTRAP, specs=[TopicSpec(TOPIC, partitions=1, public=False), TopicSpec(dlq(TOPIC), partitions=1)]
    )
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_effects.sql").write_text("CREATE TABLE effects (n int NOT NULL);")
    settings = SelfTestSettings(
        database=unique("test_selftest"), consumer_group=unique("test-selftest"), master_key=new_master_key()
    )
    await fast_forward_group(settings.consumer_group or "", [TOPIC])
    runtime = Runtime(settings, migrations=migrations)
    consumer = runtime.consume(
        TOPIC,
        per_event(handle),
        parser=parser_for({"test.happened": Happened}),
        options=ConsumerOptions(max_records=50, retries=3, backoff_s=0.05),
    )
    async with running(runtime.app):
        yield consumer
    await drop_database(settings.database or "")


def event(n: int, mode: str) -> CloudEvent:
    return CloudEvent.new("test.happened", "urn:test", {"n": n, "mode": mode})


async def test_rejected_and_failing_records_are_dead_lettered_and_the_rest_applied_once(service) -> None:
    base = 1000 * (len(attempts) + 1)
    plan = [(base + 1, "ok"), (base + 2, "reject"), (base + 3, "flaky"), (base + 4, "broken"), (base + 5, "ok")]
    async with TopicReader(dlq(TOPIC)) as dead, Producer() as producer:
        for n, mode in plan:
            await producer.send(TOPIC, str(n), event(n, mode))
        records = await dead.wait_for(
            lambda r: r.key in {str(base + 2).encode(), str(base + 4).encode()}, count=2, timeout=60
        )

    reasons = {r.key.decode(): header(r, "error.reason") for r in records}
    assert reasons == {str(base + 2): "not_acceptable", str(base + 4): "processing_failed"}
    assert "ValueError after 4 attempts" in (
        header(next(r for r in records if r.key == str(base + 4).encode()), "error.detail") or ""
    )
    # Alone, the first try and three retries, then the DLQ; before that it may have been tried in
    # the halves the failed batch was split into (at most three levels for five records).
    assert 4 <= attempts[base + 4] <= 4 + 3

    await eventually(lambda: service.stats.processed >= 3, timeout=30)
    async with service._pool().acquire() as conn:
        applied = sorted(
            r["n"] for r in await conn.fetch("SELECT n FROM effects WHERE n > $1 AND n < $2", base, base + 10)
        )
    assert applied == [base + 1, base + 3, base + 5]  # the flaky one once, after its retries
    assert service.stats.dead_lettered == {"not_acceptable": 1, "processing_failed": 1}


async def test_a_valid_record_with_a_key_that_is_not_utf8_is_applied_not_failed(service) -> None:
    """The key is the producer's routing hint, not part of the contract: bytes that are not UTF-8
    are shown with replacement characters, and the record is applied (before, reading
    ``item.key`` raised UnicodeDecodeError until the record was dead-lettered as processing_failed)."""
    base = 1000 * (len(attempts) + 1)
    async with Producer() as producer:
        await producer._producer.send_and_wait(TOPIC, event(base + 1, "ok").to_bytes(), key=b"\xff\xfe-7")
        await producer.send(TOPIC, str(base + 2), event(base + 2, "ok"))
    await eventually(lambda: base + 2 in keys, timeout=30)
    assert keys[base + 1] == "\ufffd\ufffd-7"
    assert attempts[base + 1] == 1
    assert service.stats.dead_lettered == {}


calls: list[list[int]] = []


async def handle_batch(conn: asyncpg.Connection, items: list[Incoming]) -> None:
    """A batch handler like the registry's: one bad record fails the whole call."""
    numbers = [item.event.data.n for item in items if isinstance(item.event.data, Happened)]
    calls.append(numbers)
    for item in items:
        assert isinstance(item.event.data, Happened)
        if item.event.data.mode == "reject":
            raise Rejected("not_acceptable", "data.mode: this record is refused on purpose")
    await conn.executemany("INSERT INTO effects (n) VALUES ($1)", [(n,) for n in numbers])


@pytest.fixture
async def batch_service(tmp_path: Path) -> AsyncIterator[ReliableConsumer]:
    await provision(
        BOOTSTRAP, specs=[TopicSpec(TOPIC, partitions=1, public=False), TopicSpec(dlq(TOPIC), partitions=1)]
    )
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_effects.sql").write_text("CREATE TABLE effects (n int NOT NULL);")
    settings = SelfTestSettings(
        database=unique("test_selftest"), consumer_group=unique("test-selftest"), master_key=new_master_key()
    )
    await fast_forward_group(settings.consumer_group or "", [TOPIC])
    runtime = Runtime(settings, migrations=migrations)
    consumer = runtime.consume(
        TOPIC,
        handle_batch,
        parser=parser_for({"test.happened": Happened}),
        options=ConsumerOptions(max_records=500, retries=3, backoff_s=0.05),
    )
    async with running(runtime.app):
        yield consumer
    await drop_database(settings.database or "")


async def test_a_failed_batch_is_narrowed_down_by_halves_and_each_good_record_applied_once(batch_service) -> None:
    base = 1_000_000 + 1000 * len(calls)
    bad = base + 77
    numbers = [base + i for i in range(1, 129)]
    async with TopicReader(dlq(TOPIC)) as dead, Producer() as producer:
        await producer.send_many(
            TOPIC, [(str(n), event(n, "reject" if n == bad else "ok").to_bytes()) for n in numbers]
        )
        [record] = await dead.wait_for(lambda r: r.key == str(bad).encode(), timeout=60)
    assert header(record, "error.reason") == "not_acceptable"

    await eventually(lambda: batch_service.stats.processed >= len(numbers) - 1, timeout=30)
    async with batch_service._pool().acquire() as conn:
        applied = [
            r["n"] for r in await conn.fetch("SELECT n FROM effects WHERE n >= $1 AND n < $2", base, base + 1000)
        ]
    assert sorted(applied) == [n for n in numbers if n != bad]  # each once, the bad one never
    ours = [c for c in calls if c and base <= c[0] < base + 1000]
    # However the 128 records were fetched, the failing batch was split in halves: about two
    # transactions per level down to the bad record (7 levels for 128), never one per record.
    assert len(ours) <= 2 * 8 + 4, [len(c) for c in ours]
    assert [bad] in ours  # tried alone at last, which is how its reason is known
    assert batch_service.stats.dead_lettered == {"not_acceptable": 1}


pipelined: list[list[int]] = []
outage: set[int] = set()  # numbers whose first transaction fails as if the database went away


async def handle_pipelined(conn: asyncpg.Connection, items: list[Incoming]) -> None:
    numbers = [item.event.data.n for item in items if isinstance(item.event.data, Happened)]
    pipelined.append(numbers)
    hit = outage.intersection(numbers)
    if hit:
        outage.difference_update(hit)
        raise OSError("connection lost")  # infrastructure: the batch is rewound, not dead-lettered
    await conn.executemany("INSERT INTO effects (n) VALUES ($1)", [(n,) for n in numbers])


@pytest.fixture
async def pipelined_service(tmp_path: Path) -> AsyncIterator[ReliableConsumer]:
    await provision(
        BOOTSTRAP, specs=[TopicSpec(TOPIC, partitions=1, public=False), TopicSpec(dlq(TOPIC), partitions=1)]
    )
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_effects.sql").write_text("CREATE TABLE effects (id serial PRIMARY KEY, n int NOT NULL);")
    settings = SelfTestSettings(
        database=unique("test_selftest"), consumer_group=unique("test-selftest"), master_key=new_master_key()
    )
    await fast_forward_group(settings.consumer_group or "", [TOPIC])
    runtime = Runtime(settings, migrations=migrations)
    consumer = runtime.consume(
        TOPIC,
        handle_pipelined,
        parser=parser_for({"test.happened": Happened}),
        options=ConsumerOptions(max_records=20, pipeline=True, infrastructure_backoff_s=0.05),
    )
    async with running(runtime.app):
        yield consumer
    await drop_database(settings.database or "")


async def test_a_pipelined_consumer_applies_each_record_once_in_order_and_commits_each_batch(
    pipelined_service,
) -> None:
    """Batches prepared while the previous one's transaction runs: every record applied once, in
    the topic's order, through an outage that rewinds a batch (and the one prepared behind it);
    the group's committed offset ends after the last record."""
    base = 2_000_000 + 1000 * len(pipelined)
    numbers = [base + i for i in range(1, 301)]
    outage.update({base + 95, base + 230})
    async with Producer() as producer:
        await producer.send_many(TOPIC, [("k", event(n, "ok").to_bytes()) for n in numbers])
    await eventually(lambda: pipelined_service.stats.processed >= len(numbers), timeout=60)
    async with pipelined_service._pool().acquire() as conn:
        applied = [r["n"] for r in await conn.fetch("SELECT n FROM effects WHERE n > $1 ORDER BY id", base)]
    assert applied == numbers  # each once, in order
    assert not outage  # both outages happened, and their batches were applied after all
    assert len([c for c in pipelined if c and base < c[0] < base + 1000]) > 300 // 20  # several batches
    assert pipelined_service.stats.dead_lettered == {}

    tp = TopicPartition(TOPIC, 0)
    reader = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP, group_id=pipelined_service.group_id, enable_auto_commit=False
    )
    await reader.start()
    try:
        end = (await reader.end_offsets([tp]))[tp]

        async def committed_to_end() -> bool:
            return bool(await reader.committed(tp) == end)

        await eventually(committed_to_end, timeout=30)
    finally:
        await reader.stop()
