"""The transactional outbox on the real broker and database: rows are written in the order given,
in one statement, and a service's relay sends a large backlog on one key (a sweep's purge tasks
share its id) in that order, with a record larger than a producer batch among them, then empties
the outbox."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar

import pytest

from lampo.contracts.categories import Category
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.registry import SubjectChanged
from lampo.crypto import new_master_key
from lampo.messaging import outbox
from lampo.messaging.topics import TopicSpec, provision
from lampo.service import Runtime
from lampo.settings import ServiceSettings
from lampo.testing import BOOTSTRAP, TopicReader, drop_database, eventually, running, unique

TOPIC = "lampo.outboxtest.v1"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class OutboxTestSettings(ServiceSettings):
    service: ClassVar[str] = "outboxtest"


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    await provision(BOOTSTRAP, specs=[TopicSpec(TOPIC, partitions=3, public=False)])
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    settings = OutboxTestSettings(
        database=unique("test_outbox"), consumer_group=unique("test-outbox"), master_key=new_master_key()
    )
    runtime = Runtime(settings, migrations=migrations)
    async with running(runtime.app):
        yield runtime
    await drop_database(settings.database or "")


def event(n: int, padding: int = 0) -> CloudEvent:
    return CloudEvent.new("test.numbered", "urn:test", {"n": n, "padding": "x" * padding})


async def test_rows_are_written_in_the_order_given_with_their_fields(runtime: Runtime) -> None:
    # uncommitted: the relay cannot take the rows while they are looked at
    async with runtime.pool.acquire() as conn, conn.transaction():
        events = [event(n) for n in range(5)]
        await outbox.add(
            conn,
            [
                outbox.OutgoingEvent(
                    TOPIC,
                    f"key-{n % 2}",
                    e,
                    subject_id=f"subj-{n}" if n % 2 else None,
                    traceparent=TRACEPARENT if n == 3 else None,
                )
                for n, e in enumerate(events)
            ],
        )
        rows = await conn.fetch(
            "SELECT topic, key, value, event_id, event_type, subject_id, traceparent FROM outbox ORDER BY id"
        )
        assert [r["event_id"] for r in rows] == [e.id for e in events]
        assert [bytes(r["value"]) for r in rows] == [e.to_bytes() for e in events]
        assert [r["key"] for r in rows] == ["key-0", "key-1", "key-0", "key-1", "key-0"]
        assert [r["subject_id"] for r in rows] == [None, "subj-1", None, "subj-3", None]
        assert [r["traceparent"] for r in rows] == [None, None, None, TRACEPARENT, None]  # no span is current
        assert {(r["topic"], r["event_type"]) for r in rows} == {(TOPIC, "test.numbered")}
        assert await outbox.purge_subject(conn, "subj-3") == 1
        await conn.execute("DELETE FROM outbox")  # (not sent: the transaction ends here)


async def test_a_large_backlog_on_one_key_leaves_in_order(runtime: Runtime) -> None:
    count, big = 2500, 1200
    async with TopicReader(TOPIC) as reader:
        async with runtime.pool.acquire() as conn, conn.transaction():
            await outbox.add(
                conn,
                # a record larger than the relay producer's 1 MiB batch travels too
                [
                    outbox.OutgoingEvent(TOPIC, "one-key", event(n, 1_500_000 if n == big else 200))
                    for n in range(count)
                ],
            )
        records = await reader.wait_for(lambda r: r.key == b"one-key", count=count, timeout=120)
    assert [json.loads(r.value)["data"]["n"] for r in records] == list(range(count))
    assert len({r.partition for r in records}) == 1
    assert len(records[big].value) > 1_500_000

    relay = runtime.relay
    assert relay is not None

    async def emptied() -> bool:
        async with runtime.pool.acquire() as conn:
            left = await conn.fetchval("SELECT count(*) FROM outbox")
        return left == 0 and relay.sent == count  # (counted just after the delete commits)

    await eventually(emptied)


async def test_the_relay_stops_when_a_wake_up_and_the_stop_come_together(runtime: Runtime) -> None:
    """A NOTIFY that lands just as the service stops: the relay's wait ends on both in one turn.
    With ``asyncio.wait_for`` (Python 3.11) the relay dropped the cancellation and ran on, and the
    service never finished stopping (see lampo.aio)."""
    relay = runtime.relay
    assert relay is not None and relay._task is not None
    await eventually(lambda: relay.idle, timeout=10)  # waiting for its next wake-up
    relay._notified()  # the NOTIFY callback, called as asyncpg calls it
    stopping = asyncio.create_task(relay.stop())
    await asyncio.wait({stopping}, timeout=5)
    running_on = not relay._task.done()
    relay._task.cancel()  # so that a failure here does not also hang the fixture
    await asyncio.wait({stopping}, timeout=5)
    assert not running_on, "the relay ran on after it was stopped"


async def test_one_relay_per_database_sends_and_another_takes_over_when_it_dies(runtime: Runtime) -> None:
    """Two instances of a service share a database: only the relay holding the relay lock sends
    (two relays side by side would each take a batch, and one key's notices could leave out of
    order); when its process dies, its session ends, and the waiting relay takes over and sends
    what is left, in order."""
    active = runtime.relay
    assert active is not None
    await eventually(lambda: active.active, timeout=10)
    sent: list[tuple[str, int]] = []

    async def send(topic: str, key: str, value: bytes, headers: dict[str, str]) -> None:
        sent.append((key, json.loads(value)["data"]["n"]))

    standby = outbox.OutboxRelay(runtime.pool, send, runtime.tracer, batch_size=7, poll_s=0.2)
    await standby.start()
    try:

        async def add(numbers: range) -> None:
            for n in numbers:  # one transaction each, as services write them
                async with runtime.pool.acquire() as conn, conn.transaction():
                    await outbox.add(conn, [outbox.OutgoingEvent(TOPIC, "one-key", event(n))])

        async def emptied() -> bool:
            async with runtime.pool.acquire() as conn:
                return await conn.fetchval("SELECT count(*) FROM outbox") == 0

        await add(range(60))
        await eventually(emptied)
        assert not standby.active and sent == [], "a second relay sent beside the active one"

        # The active relay's process dies: its task ends and its connection drops without a word.
        assert active._task is not None and active._listener is not None
        active._task.cancel()
        active._listener.terminate()
        await add(range(60, 120))
        await eventually(lambda: standby.active and len(sent) == 60, timeout=10)
        assert sent == [("one-key", n) for n in range(60, 120)]
        await eventually(emptied)
    finally:
        await standby.stop()


@pytest.mark.parametrize(
    "changed_at",
    [
        datetime(2026, 11, 28, 10, 0, tzinfo=UTC),
        datetime(2026, 11, 28, 10, 0, 1, 250, tzinfo=UTC),
        datetime(2026, 6, 30, 23, 59, 59, 500000, tzinfo=timezone(timedelta(hours=3))),
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
    ],
)
def test_an_event_record_is_the_bytes_the_cloud_event_writes(changed_at: datetime) -> None:
    """``event_record`` (a batch's notices, serialized without models) writes exactly what
    ``CloudEvent.new(...).to_bytes()`` writes for the same event, and it parses back as one."""
    data = {
        "subject_id": "s-1",
        "customer_number": "C-1",
        "kind": "person",
        "categories": [Category.BASIC, "contact"],
        "origin": "subject",
        "changed_at": changed_at,
    }
    now = datetime(2026, 12, 2, 9, 0, 0, 123456, tzinfo=UTC)
    record = outbox.event_record(
        "registry.events.v1", "s-1", "subject.changed", "urn:lampo:registry", data, id="e-1", time=now
    )
    expected = CloudEvent.new(
        "subject.changed", "urn:lampo:registry", SubjectChanged.model_validate(data), id="e-1", time=now
    )
    assert record.value == expected.to_bytes()
    assert (record.event_id, record.event_type, record.key) == ("e-1", "subject.changed", "s-1")
    fresh = outbox.event_record("registry.events.v1", "s-1", "subject.changed", "urn:lampo:registry", data)
    assert CloudEvent.from_bytes(fresh.value).id == fresh.event_id != "e-1"
