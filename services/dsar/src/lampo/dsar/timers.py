"""The timers of the checker: restriction lifts released once their notice is out, tasks sent
again or failed when their wait is over, and requests marked overdue. Each is one transaction
per request, deciding through the rules."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from lampo.dsar import domain
from lampo.dsar.store import DsarStore

if TYPE_CHECKING:
    from lampo.dsar.coordinator import Coordinator


async def release_lifts(c: Coordinator, limit: int = 500) -> int:
    """Send a restriction lift's tasks once its notice to the subject has left the outbox."""
    async with c._pool().acquire() as conn:
        ids = await DsarStore(conn).lift_notices_out(limit)
    for request_id in ids:
        async with c._pool().acquire() as conn, conn.transaction():
            await c._decide(conn, request_id, domain.ReleaseHeld())
    return len(ids)


async def check_timeouts(c: Coordinator, limit: int = 500) -> int:
    """Send again each task whose wait is over (same task_id, attempt + 1, a doubled wait),
    or fail it, naming the participant, after the last attempt."""
    now = c.clock.now()
    async with c._pool().acquire() as conn:
        due = await DsarStore(conn).timed_out(now, limit)
    for row in due:
        async with c._pool().acquire() as conn, conn.transaction():
            await time_out(c, conn, row["task_id"], row["request_id"], now)
    return len(due)


async def time_out(c: Coordinator, conn: asyncpg.Connection, task_id: str, request_id: str, now: datetime) -> None:
    await c._decide(conn, request_id, domain.TimeOut(task_id))


async def check_overdue(c: Coordinator, limit: int = 500) -> int:
    """Publish dsar.overdue, once, for each request past its deadline unanswered."""
    now = c.clock.now()
    async with c._pool().acquire() as conn:
        ids = await DsarStore(conn).overdue(now, limit)
    for request_id in ids:
        async with c._pool().acquire() as conn, conn.transaction():
            await c._decide(conn, request_id, domain.MarkOverdue())
    return len(ids)
