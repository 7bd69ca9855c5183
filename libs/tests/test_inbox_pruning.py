"""Inbox pruning: a service keeps an inbox row only while a topic it reads can still deliver that
event again (the topic's retention, plus Kafka's segment roll and a day), and drops the rest on the
shared scheduler (``Runtime.every``, job "inbox pruning"). Real broker and database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import ClassVar

import asyncpg

from lampo.contracts.catalog import CONSENT_EVENTS, PRIVACY_TASKS, REGISTRY_EVENTS, REGISTRY_INBOUND
from lampo.crypto import new_master_key
from lampo.db import create_pool, ensure_database, migrate, platform_migrations
from lampo.messaging import inbox
from lampo.messaging.topics import DEAD_LETTER_HOURS, INBOUND_HOURS
from lampo.service import Runtime
from lampo.settings import ServiceSettings
from lampo.testing import drop_database, unique

PG = "postgresql://lampo:lampo@127.0.0.1:5432"


class PruningSettings(ServiceSettings):
    service: ClassVar[str] = "pruning"


async def nothing(conn: asyncpg.Connection, items: list[object]) -> None:
    return None


def test_the_horizon_is_the_longest_retention_of_the_topics_read_plus_the_margin() -> None:
    assert INBOUND_HOURS == 24 and DEAD_LETTER_HOURS == 72  # the figures the margin is added to
    assert inbox.horizon([REGISTRY_INBOUND]) == timedelta(hours=24) + timedelta(days=8)
    assert inbox.horizon([REGISTRY_INBOUND, PRIVACY_TASKS]) == timedelta(days=7) + timedelta(days=8)
    assert inbox.horizon([REGISTRY_EVENTS, REGISTRY_INBOUND]) == timedelta(days=30) + timedelta(days=8)
    # a compacted topic's states are kept by time, whatever their age: it does not hold rows back
    assert inbox.horizon([CONSENT_EVENTS, REGISTRY_INBOUND]) == timedelta(hours=24) + timedelta(days=8)
    assert inbox.horizon(["someone.elses.topic", REGISTRY_INBOUND]) is None  # unknown: keep all


async def test_prune_deletes_only_rows_older_than_the_cutoff_in_batches() -> None:
    database = unique("test_prune")
    url = f"{PG}/{database}"
    await ensure_database(url)
    pool = await create_pool(url)
    try:
        await migrate(pool, [platform_migrations()])
        now = datetime.now(UTC)
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO inbox (consumer, event_id, handled_at)"
                " SELECT 'c', 'old-' || g, $1::timestamptz - g * interval '1 hour' FROM generate_series(1, 7) AS g",
                now - timedelta(days=10),
            )
            await conn.execute(
                "INSERT INTO inbox (consumer, event_id, handled_at) VALUES ('c', 'recent', $1), ('d', 'edge', $2)",
                now - timedelta(days=1),
                now - timedelta(days=9, hours=23),
            )
        assert await inbox.prune(pool, timedelta(days=10), batch=3) == 7
        async with pool.acquire() as conn:
            left = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM inbox")}
        assert left == {"recent", "edge"}
        assert await inbox.prune(pool, timedelta(days=10), batch=3) == 0
    finally:
        await pool.close()
        await drop_database(database)


async def test_a_service_prunes_its_inbox_by_the_topics_its_consumers_read() -> None:
    """The runtime's "inbox pruning" job (registered on ``Runtime.every`` for every service; the
    schedule itself is test_schedule's) with the horizon of the topics its consumers read. The
    service is not started: its consumers must not join the shared topics' groups here."""
    settings = PruningSettings(
        database=unique("test_pruning"), consumer_group=unique("test-pruning"), master_key=new_master_key()
    )
    runtime = Runtime(settings, migrations=None)
    runtime.consume(REGISTRY_INBOUND, nothing, name="pruning:inbound")  # 24 h
    runtime.consume(PRIVACY_TASKS, nothing, name="pruning:tasks")  # 7 d: the longest
    prune = runtime.jobs["inbox pruning"]
    now = datetime.now(UTC)  # handled_at is the database's clock, and so is the pruning's
    await runtime._connect_database()
    try:
        async with runtime.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO inbox (consumer, event_id, handled_at) VALUES"
                " ('pruning:inbound', 'a', $1), ('pruning:tasks', 'b', $1),"  # past 7 d + 8 d: gone
                " ('pruning:inbound', 'c', $2), ('pruning:tasks', 'd', $3)",  # kept
                now - timedelta(days=15, minutes=1),
                now - timedelta(days=14, hours=23),
                now,
            )

        async def left() -> set[str]:
            async with runtime.pool.acquire() as conn:
                return {r["event_id"] for r in await conn.fetch("SELECT event_id FROM inbox")}

        assert await prune() == 2
        assert await left() == {"c", "d"}
        assert await prune() == 0
    finally:
        await runtime._close_database()
        await drop_database(settings.database or "")


def test_pruning_can_be_turned_off() -> None:
    settings = PruningSettings(database=unique("test_pruning"), master_key=new_master_key(), inbox_prune_interval_s=0)
    assert "inbox pruning" not in Runtime(settings, migrations=None).jobs
