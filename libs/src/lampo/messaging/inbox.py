"""Inbox: which events a consumer has handled, written in the same transaction as the effect.

A row is needed only while its event can come again: a topic delivers a record for at most its
retention (plus up to a segment's roll time, as Kafka deletes whole segments), so ``horizon`` of
the topics a service reads, and ``prune`` then deletes what is older, on the shared scheduler
(``Runtime``'s "inbox pruning" job)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

import asyncpg

from lampo.messaging.topics import TOPICS

# Kafka deletes a segment only once its newest record is past retention.ms, and rolls a segment
# after segment.ms (7 days, the broker's default; the topics do not change it): a record can be
# delivered up to that much longer than its topic's retention. A day more for clocks and delays.
SEGMENT_ROLL = timedelta(days=7)
MARGIN = SEGMENT_ROLL + timedelta(days=1)
_RETENTION = {t.name: t for t in TOPICS}


async def claim(conn: asyncpg.Connection, consumer: str, event_ids: Sequence[str]) -> set[str]:
    """Record the ids; returns those seen for the first time (the rest are redeliveries)."""
    if not event_ids:
        return set()
    rows = await conn.fetch(
        "INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::text[])"
        " ON CONFLICT DO NOTHING RETURNING event_id",
        consumer,
        list(event_ids),
    )
    return {r["event_id"] for r in rows}


def horizon(topics: Iterable[str]) -> timedelta | None:
    """How long inbox rows of consumers of ``topics`` must stay: the longest retention of those
    topics plus ``MARGIN``. Compacted topics do not count: their records are states whose
    handlers keep the latest by time, and a record of theirs may come back at any age (a new
    reader starts from the beginning), which no inbox could cover. None (keep everything) when a
    topic is not one of the suite's, or keeps its records forever."""
    longest = timedelta(0)
    for topic in topics:
        spec = _RETENTION.get(topic)
        if spec is None:
            return None
        if spec.compact:
            continue
        if spec.retention_ms < 0:
            return None
        longest = max(longest, timedelta(milliseconds=spec.retention_ms))
    return longest + MARGIN


async def prune(pool: asyncpg.Pool, older_than: timedelta, *, batch: int = 5000) -> int:
    """Delete inbox rows handled more than ``older_than`` ago, ``batch`` rows per transaction
    (short locks, no long transaction beside live consumers); returns how many went. Ages are
    measured on the database's clock, which stamped ``handled_at``. Safe in several instances at
    once (a row deleted twice is deleted once)."""
    deleted = 0
    while True:
        async with pool.acquire() as conn:
            status = await conn.execute(
                "DELETE FROM inbox WHERE (consumer, event_id) IN"
                " (SELECT consumer, event_id FROM inbox WHERE handled_at < now() - $1::interval LIMIT $2)",
                older_than,
                batch,
            )
        count = int(status.split()[-1])
        deleted += count
        if count < batch:
            return deleted
