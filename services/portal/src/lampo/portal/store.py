"""Every SQL statement of the privacy centre."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Code:
    challenge_id: str
    customer_number: str
    mac: bytes
    expires_at: datetime
    attempts: int
    used_at: datetime | None


@dataclass(frozen=True)
class OwnRequest:
    request_id: str
    customer_number: str
    kind: str
    language: str
    verified_by: str
    submitted_at: datetime


@dataclass(frozen=True)
class QueuedMail:
    event_id: str
    request_id: str
    what: str
    data: dict[str, Any]
    attempts: int
    customer_number: str
    kind: str
    language: str


# -- one-time codes ------------------------------------------------------------------------------


async def codes_sent_since(conn: asyncpg.Connection, customer_number: str, since: datetime) -> int:
    n = await conn.fetchval(
        "SELECT count(*) FROM codes WHERE customer_number = $1 AND created_at >= $2", customer_number, since
    )
    return int(n)


async def add_code(
    conn: asyncpg.Connection,
    challenge_id: str,
    customer_number: str,
    *,
    mac: bytes,
    now: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO codes (challenge_id, customer_number, mac, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        uuid.UUID(challenge_id), customer_number, mac, now, expires_at,
    )  # fmt: skip


async def code_for_update(conn: asyncpg.Connection, challenge_id: str) -> Code | None:
    try:
        key = uuid.UUID(challenge_id)
    except ValueError:
        return None
    row = await conn.fetchrow(
        "SELECT challenge_id, customer_number, mac, expires_at, attempts, used_at FROM codes"
        " WHERE challenge_id = $1 FOR UPDATE",
        key,
    )
    if row is None:
        return None
    return Code(str(row["challenge_id"]), row["customer_number"], bytes(row["mac"]), row["expires_at"],
                row["attempts"], row["used_at"])  # fmt: skip


async def count_wrong_try(conn: asyncpg.Connection, challenge_id: str) -> int:
    attempts = await conn.fetchval(
        "UPDATE codes SET attempts = attempts + 1 WHERE challenge_id = $1 RETURNING attempts", uuid.UUID(challenge_id)
    )
    return int(attempts)


async def use_code(conn: asyncpg.Connection, challenge_id: str, now: datetime) -> None:
    await conn.execute("UPDATE codes SET used_at = $2 WHERE challenge_id = $1", uuid.UUID(challenge_id), now)


async def prune_codes(conn: asyncpg.Connection, before: datetime) -> int:
    """Codes expired before ``before`` (kept a while for the per-number send limit) go."""
    status = await conn.execute("DELETE FROM codes WHERE expires_at < $1", before)
    return int(status.split()[-1])


# -- requests ------------------------------------------------------------------------------------


async def add_request(
    conn: asyncpg.Connection, request_id: str, customer_number: str, *, kind: str, language: str, verified_by: str,
    now: datetime,
) -> None:  # fmt: skip
    await conn.execute(
        "INSERT INTO requests (request_id, customer_number, kind, language, verified_by, submitted_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (request_id) DO NOTHING",
        request_id, customer_number, kind, language, verified_by, now,
    )  # fmt: skip


async def forget_request(conn: asyncpg.Connection, request_id: str) -> None:
    """A request the coordinator did not take (refused at once): not the subject's to follow."""
    await conn.execute("DELETE FROM requests WHERE request_id = $1", request_id)


def _own(row: asyncpg.Record) -> OwnRequest:
    return OwnRequest(row["request_id"], row["customer_number"], row["kind"], row["language"], row["verified_by"],
                      row["submitted_at"])  # fmt: skip


async def requests_of(conn: asyncpg.Connection, customer_number: str, limit: int = 200) -> list[OwnRequest]:
    rows = await conn.fetch(
        "SELECT request_id, customer_number, kind, language, verified_by, submitted_at FROM requests"
        " WHERE customer_number = $1 ORDER BY submitted_at DESC, request_id LIMIT $2",
        customer_number, limit,
    )  # fmt: skip
    return [_own(r) for r in rows]


async def own_request(conn: asyncpg.Connection, request_id: str, customer_number: str) -> OwnRequest | None:
    """The request, if it is this customer's (another's is exactly as unknown as none)."""
    row = await conn.fetchrow(
        "SELECT request_id, customer_number, kind, language, verified_by, submitted_at FROM requests"
        " WHERE request_id = $1 AND customer_number = $2",
        request_id, customer_number,
    )  # fmt: skip
    return _own(row) if row is not None else None


async def known_requests(conn: asyncpg.Connection, request_ids: list[str]) -> set[str]:
    rows = await conn.fetch("SELECT request_id FROM requests WHERE request_id = ANY($1::text[])", request_ids)
    return {r["request_id"] for r in rows}


# -- mail ----------------------------------------------------------------------------------------


async def queue_mail(
    conn: asyncpg.Connection, event_id: str, *, request_id: str, what: str, data: dict[str, Any], now: datetime
) -> bool:
    """One mail per event: False when the event was queued before."""
    status = await conn.execute(
        "INSERT INTO mail_queue (event_id, request_id, what, data, queued_at, next_attempt_at)"
        " VALUES ($1, $2, $3, $4::jsonb, $5, $5) ON CONFLICT (event_id) DO NOTHING",
        event_id, request_id, what, json.dumps(data), now,
    )  # fmt: skip
    return str(status).endswith(" 1")


async def due_mail(conn: asyncpg.Connection, now: datetime, limit: int = 20) -> list[QueuedMail]:
    """Mail due now, locked for this sender (another instance skips it)."""
    rows = await conn.fetch(
        "SELECT m.event_id, m.request_id, m.what, m.data, m.attempts, r.customer_number, r.kind, r.language"
        " FROM mail_queue m JOIN requests r USING (request_id)"
        " WHERE m.sent_at IS NULL AND m.gave_up IS NULL AND m.next_attempt_at <= $1"
        " ORDER BY m.queued_at, m.event_id LIMIT $2 FOR UPDATE OF m SKIP LOCKED",
        now, limit,
    )  # fmt: skip
    return [
        QueuedMail(
            r["event_id"],
            r["request_id"],
            r["what"],
            json.loads(r["data"]),
            r["attempts"],
            r["customer_number"],
            r["kind"],
            r["language"],
        )
        for r in rows
    ]


async def mail_sent(conn: asyncpg.Connection, event_id: str, now: datetime) -> None:
    await conn.execute("UPDATE mail_queue SET sent_at = $2, attempts = attempts + 1 WHERE event_id = $1", event_id, now)


async def mail_failed(conn: asyncpg.Connection, event_id: str, retry_at: datetime, give_up: str | None) -> None:
    await conn.execute(
        "UPDATE mail_queue SET attempts = attempts + 1, next_attempt_at = $2, gave_up = $3 WHERE event_id = $1",
        event_id, retry_at, give_up,
    )  # fmt: skip


async def mail_of(conn: asyncpg.Connection, request_id: str) -> list[dict[str, Any]]:
    """What was sent about a request (for tests and the operator): no addresses, none kept."""
    rows = await conn.fetch(
        "SELECT event_id, what, sent_at, attempts, gave_up FROM mail_queue WHERE request_id = $1 ORDER BY queued_at",
        request_id,
    )
    return [dict(r) for r in rows]


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, 5 * 2**attempts))
