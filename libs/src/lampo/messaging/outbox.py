"""Transactional outbox: events are rows written with the change they announce, and a relay
sends them to Kafka after commit, with the trace context of the work that wrote them.

Rows are deleted once Kafka acknowledged them, so the outbox never accumulates personal data;
a subject's erasure also deletes its unsent rows (``purge_subject``).

One relay per database sends at a time, whatever the number of instances: the active one holds a
session-level advisory lock (``RELAY_LOCK``) on the connection it sends through, the others wait
for it and take over when its session ends (stopped, killed, connection lost). Two relays sending
side by side would each take a batch and publish one key's notices out of order.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import orjson
from aiokafka.partitioner import DefaultPartitioner, murmur2
from opentelemetry.trace import Tracer

from lampo.aio import stop_task, wait_event
from lampo.contracts.envelope import CONTENT_TYPE, JSON_DATA, CloudEvent
from lampo.signing import SIGNED_TOPICS, Signer
from lampo.tracing import TRACEPARENT, current_traceparent, publish_span

log = logging.getLogger("lampo.outbox")
CHANNEL = "lampo_outbox"
RELAY_LOCK: Final = 0x6C616D706F6F7574  # pg_advisory_lock key of "the relay of this database" ("lampoout")


class KeyPartitioner:
    """aiokafka's default partitioner (murmur2 of the key, as the Java clients) with the hash of
    recent keys remembered: a relay batch often repeats a key (a sweep's tasks share one), and
    aiokafka's murmur2 is pure Python (~20 us a record)."""

    def __init__(self, remembered: int = 4096) -> None:
        self._hash = functools.lru_cache(maxsize=remembered)(murmur2)

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(DefaultPartitioner()(key, all_partitions, available))
        index = int(self._hash(key)) & 0x7FFFFFFF
        return all_partitions[index % len(all_partitions)]


RELAY_PRODUCER_OPTIONS: Final[dict[str, Any]] = {
    "enable_idempotence": True,  # acks=all, no duplicates from the producer's own retries
    "linger_ms": 5,
    "max_request_size": 4 * 1024 * 1024,
    # A relay batch (hundreds of rows, often one key: a sweep's tasks share its id) must fit in
    # few producer batches. With aiokafka's 16 KiB default a partition's batch filled after ~20
    # records and every other pending send of the relay batch woke up and retried at each
    # drain: 10,000 purge tasks took 230,000 appends and 24 s of CPU. Topics take 2 MiB records
    # (lampo.messaging.topics), so a 1 MiB batch is always accepted; a larger record still
    # travels alone in a batch of its own size.
    "max_batch_size": 1024 * 1024,
    "partitioner": KeyPartitioner(),
}
"""aiokafka producer options for a relay's producer (``lampo.service.Runtime`` and benchmarks)."""


@dataclass(frozen=True)
class OutgoingEvent:
    topic: str
    key: str
    event: CloudEvent
    subject_id: str | None = None
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """An outbox row whose value is already serialized, for a writer of many events of one shape
    (a sweep's purge tasks) that builds the values itself; ``add`` takes it beside
    ``OutgoingEvent``."""

    topic: str
    key: str
    value: bytes
    event_id: str
    event_type: str
    subject_id: str | None = None
    traceparent: str | None = None


def event_record(
    topic: str,
    key: str,
    event_type: str,
    source: str,
    data: dict[str, Any],
    *,
    subject_id: str | None = None,
    traceparent: str | None = None,
    id: str | None = None,  # the CloudEvents attribute names, as CloudEvent.new
    time: datetime | None = None,
) -> Record:
    """A new CloudEvent (a fresh uuid4 ``id``, the current UTC ``time``, as ``CloudEvent.new``)
    serialized straight to its record value: the bytes ``CloudEvent.to_bytes`` writes for the same
    event (datetimes in RFC 3339, ``Z`` for UTC), without building and validating two models. For a
    writer of many events (a batch's change notices) whose ``data`` holds only values it has
    already validated: strings, numbers, lists, enums and aware datetimes."""
    event_id = id if id is not None else str(uuid.uuid4())
    value = orjson.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": event_type,
            "time": time if time is not None else datetime.now(UTC),
            "datacontenttype": JSON_DATA,
            "data": data,
        },
        option=orjson.OPT_UTC_Z,
    )
    return Record(topic, key, value, event_id, event_type, subject_id, traceparent)


def _record(e: OutgoingEvent | Record) -> Record:
    if isinstance(e, Record):
        return e
    return Record(e.topic, e.key, e.event.to_bytes(), e.event.id, e.event.type, e.subject_id, e.traceparent)


async def add(conn: asyncpg.Connection, events: Sequence[OutgoingEvent | Record]) -> None:
    """Write events in the caller's transaction; they leave only if it commits."""
    if not events:
        return
    rows = [_record(e) for e in events]
    fallback = current_traceparent()
    # One statement for the whole list (a sweep writes a thousand rows per transaction), in list
    # order: ids follow the order of ``events``, and the relay sends in id order.
    await conn.execute(
        "INSERT INTO outbox (topic, key, value, event_id, event_type, subject_id, traceparent)"
        " SELECT topic, key, value, event_id, event_type, subject_id, traceparent"
        " FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::text[], $7::text[])"
        " WITH ORDINALITY AS e(topic, key, value, event_id, event_type, subject_id, traceparent, n) ORDER BY n",
        [r.topic for r in rows],
        [r.key for r in rows],
        [r.value for r in rows],
        [r.event_id for r in rows],
        [r.event_type for r in rows],
        [r.subject_id for r in rows],
        [r.traceparent or fallback for r in rows],
    )
    await conn.execute(f"NOTIFY {CHANNEL}")


async def purge_subject(conn: asyncpg.Connection, subject_id: str) -> int:
    status: str = await conn.execute("DELETE FROM outbox WHERE subject_id = $1", subject_id)
    return int(status.rsplit(maxsplit=1)[-1])


Send = Callable[[str, str, bytes, dict[str, str]], Awaitable[None]]


class OutboxRelay:
    """Sends committed outbox rows in id order; woken by NOTIFY, polling as a fallback.

    With a ``signer``, a record for one of ``lampo.signing.SIGNED_TOPICS`` (tasks, acks,
    approvals) leaves with the ``signature`` and ``signer`` headers, the signature made here
    over the very bytes sent."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        send: Send,
        tracer: Tracer,
        *,
        batch_size: int = 500,
        poll_s: float = 1.0,
        signer: Signer | None = None,
    ) -> None:
        self._pool = pool
        self._signer = signer
        self._send = send
        self._tracer = tracer
        self._batch = batch_size
        self._poll = poll_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self.sent = 0
        self.idle = False  # waiting for a NOTIFY or the next poll
        self.active = False  # holds the relay lock: the one relay of its database that sends

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        await stop_task(self._task)
        await self._disconnect()

    async def _connect(self) -> None:
        """The relay's own connection: it listens for NOTIFY, holds the relay lock once this
        relay is the active one, and sends through it (a lost connection loses the lock, and
        this relay stops sending with it)."""
        self._listener = await self._pool.acquire()
        await self._listener.add_listener(CHANNEL, self._notified)

    async def _disconnect(self) -> None:
        self.active = False
        if self._listener is not None:
            try:
                await self._listener.remove_listener(CHANNEL, self._notified)
            except Exception:  # noqa: BLE001, S110 - the connection may already be gone at shutdown
                pass
            # Released to the pool, the connection is reset: the session lock goes with it.
            try:
                await self._pool.release(self._listener)
            except Exception:  # noqa: BLE001 - a broken connection: the pool replaces it
                self._listener.terminate()
            self._listener = None

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _take_lock(self) -> bool:
        """Become the active relay if no other relay of this database is."""
        if self._listener is None or self._listener.is_closed():
            await self._disconnect()
            await self._connect()
        assert self._listener is not None
        self.active = bool(await self._listener.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK))
        if self.active:
            log.info("outbox relay active")
        return self.active

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                if self.active or await self._take_lock():
                    while await self.drain_once():
                        pass
                backoff = 0.1
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                log.warning("outbox relay paused: %s; retrying in %.1fs", type(e).__name__, backoff)
                await self._disconnect()  # the lock may be gone with the connection: take it again
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            except Exception as e:  # noqa: BLE001 - e.g. Kafka unavailable: keep rows, retry later
                log.warning("outbox relay could not publish: %s; retrying in %.1fs", type(e).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            self.idle = True
            await wait_event(self._wake, self._poll)
            self.idle = False
            self._wake.clear()

    async def drain_once(self) -> bool:
        """Send one batch; True when a full batch was sent (there may be more). Through the
        relay's own connection while it runs (it holds the relay lock), a pooled one otherwise."""
        if self._listener is not None and self.active:
            async with self._listener.transaction():
                return await self._drain(self._listener)
        async with self._pool.acquire() as conn, conn.transaction():
            return await self._drain(conn)

    async def _drain(self, conn: asyncpg.Connection) -> bool:
        rows = await conn.fetch(
            "SELECT id, topic, key, value, event_id, event_type, traceparent FROM outbox"
            " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            self._batch,
        )
        if not rows:
            return False
        sends = []
        for row in rows:
            traceparent = publish_span(
                self._tracer,
                row["topic"],
                row["traceparent"],
                {"messaging.message.id": row["event_id"], "cloudevents.event_type": row["event_type"]},
            )
            headers = {"content-type": CONTENT_TYPE}
            if traceparent:
                headers[TRACEPARENT] = traceparent
            value = bytes(row["value"])
            if self._signer is not None and row["topic"] in SIGNED_TOPICS:
                headers.update(self._signer.headers(value))
            sends.append(self._send(row["topic"], row["key"], value, headers))
        await asyncio.gather(*sends)
        await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
        self.sent += len(rows)
        return len(rows) == self._batch
