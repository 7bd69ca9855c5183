"""Transactional outbox: events are rows written with the change they announce, and a relay
sends them to Kafka after commit, with the trace context of the work that wrote them.

Rows are deleted once Kafka acknowledged them, so the outbox never accumulates personal data;
a subject's erasure also deletes its unsent rows (``purge_subject``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg
from opentelemetry.trace import Tracer

from lampo.contracts.envelope import CONTENT_TYPE, CloudEvent
from lampo.tracing import TRACEPARENT, current_traceparent, publish_span

log = logging.getLogger("lampo.outbox")
CHANNEL = "lampo_outbox"


@dataclass(frozen=True)
class OutgoingEvent:
    topic: str
    key: str
    event: CloudEvent
    subject_id: str | None = None
    traceparent: str | None = None


async def add(conn: asyncpg.Connection, events: Sequence[OutgoingEvent]) -> None:
    """Write events in the caller's transaction; they leave only if it commits."""
    if not events:
        return
    await conn.executemany(
        "INSERT INTO outbox (topic, key, value, event_id, event_type, subject_id, traceparent)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [
            (
                e.topic,
                e.key,
                e.event.to_bytes(),
                e.event.id,
                e.event.type,
                e.subject_id,
                e.traceparent or current_traceparent(),
            )
            for e in events
        ],
    )
    await conn.execute(f"NOTIFY {CHANNEL}")


async def purge_subject(conn: asyncpg.Connection, subject_id: str) -> int:
    status: str = await conn.execute("DELETE FROM outbox WHERE subject_id = $1", subject_id)
    return int(status.rsplit(maxsplit=1)[-1])


Send = Callable[[str, str, bytes, dict[str, str]], Awaitable[None]]


class OutboxRelay:
    """Sends committed outbox rows in id order; woken by NOTIFY, polling as a fallback."""

    def __init__(
        self, pool: asyncpg.Pool, send: Send, tracer: Tracer, *, batch_size: int = 500, poll_s: float = 1.0
    ) -> None:
        self._pool = pool
        self._send = send
        self._tracer = tracer
        self._batch = batch_size
        self._poll = poll_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self.sent = 0

    async def start(self) -> None:
        self._listener = await self._pool.acquire()
        await self._listener.add_listener(CHANNEL, self._notified)
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._listener is not None:
            try:
                await self._listener.remove_listener(CHANNEL, self._notified)
            except Exception:  # noqa: BLE001, S110 - the connection may already be gone at shutdown
                pass
            await self._pool.release(self._listener)
            self._listener = None

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                while await self.drain_once():
                    pass
                backoff = 0.1
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                log.warning("outbox relay paused: %s; retrying in %.1fs", type(e).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            except Exception as e:  # noqa: BLE001 - e.g. Kafka unavailable: keep rows, retry later
                log.warning("outbox relay could not publish: %s; retrying in %.1fs", type(e).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
            except TimeoutError:
                pass
            self._wake.clear()

    async def drain_once(self) -> bool:
        """Send one batch; True when a full batch was sent (there may be more)."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, topic, key, value, event_id, event_type, traceparent FROM outbox"
                " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch,
            )
            if not rows:
                return False
            sends = []
            for row in rows:
                with publish_span(
                    self._tracer,
                    row["topic"],
                    row["traceparent"],
                    {"messaging.message.id": row["event_id"], "cloudevents.event_type": row["event_type"]},
                ) as traceparent:
                    headers = {"content-type": CONTENT_TYPE}
                    if traceparent:
                        headers[TRACEPARENT] = traceparent
                    sends.append(self._send(row["topic"], row["key"], bytes(row["value"]), headers))
            await asyncio.gather(*sends)
            await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
        self.sent += len(rows)
        return len(rows) == self._batch
