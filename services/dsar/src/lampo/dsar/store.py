"""Every SQL statement of the coordinator."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from lampo.dsar import states
from lampo.dsar.states import TASK_OPEN, UNANSWERED_STATUSES

if TYPE_CHECKING:  # imported where rows become typed: the read view (lampo dsar status) builds no models
    from lampo.dsar import domain
    from lampo.dsar.domain import Hold

_REQUEST_COLUMNS = frozenset(
    {
        "status", "sealed_input", "subject_id", "customer_numbers", "subject_kind", "due_at", "extended_at",
        "extended_by", "extension_reason", "approved_by", "approved_at", "denied_by", "denial_reason",
        "reject_reason", "reject_detail", "resolve_attempts", "resolve_error", "next_resolve_at",
        "result_public_key", "sealed_private_key", "overdue_at", "completed_at", "completion", "lift_notice_at",
    }
)  # fmt: skip
_TASK_COLUMNS = frozenset(
    {
        "status",
        "current",
        "attempt",
        "sent_at",
        "timeout_at",
        "finished_at",
        "error",
        "erased",
        "retained",
        "sealed_result",
        "result_run",
        "result_parts",
        "effects",
    }
)


def _set_clause(fields: dict[str, Any], allowed: frozenset[str]) -> tuple[str, list[Any]]:
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    names = list(fields)
    return ", ".join(f"{n} = ${i + 2}" for i, n in enumerate(names)), [fields[n] for n in names]


WAKE_CHANNEL = "dsar_work"
"""NOTIFY channel that wakes the coordinator's checker (a new request to resolve)."""


class DsarStore:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    # -- requests ------------------------------------------------------------------------------

    async def insert_request(
        self,
        *,
        request_id: str,
        kind: str,
        status: str,
        channel: str,
        verification: dict[str, Any] | None,
        categories: list[str] | None,
        sealed_input: bytes | None,
        received_at: datetime,
        due_at: datetime,
        traceparent: str | None,
        next_resolve_at: datetime | None,
        scope: str | None = None,
        lift: bool = False,
    ) -> bool:
        """False when a request with this id already exists (nothing written)."""
        inserted = await self.conn.fetchval(
            "INSERT INTO requests (request_id, kind, status, channel, verification, categories, sealed_input,"
            " received_at, due_at, traceparent, next_resolve_at, scope, lift)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            " ON CONFLICT (request_id) DO NOTHING RETURNING true",
            request_id, kind, status, channel, verification, categories, sealed_input, received_at, due_at,
            traceparent, next_resolve_at, scope, lift,
        )  # fmt: skip
        return bool(inserted)

    async def request(self, request_id: str, *, lock: bool = False) -> asyncpg.Record | None:
        sql = "SELECT * FROM requests WHERE request_id = $1" + (" FOR UPDATE" if lock else "")
        row: asyncpg.Record | None = await self.conn.fetchrow(sql, request_id)
        return row

    async def in_progress(self, request_ids: Sequence[str]) -> set[str]:
        """Those of ``request_ids`` still in progress."""
        rows = await self.conn.fetch(
            "SELECT request_id FROM requests WHERE request_id = ANY($1::text[]) AND status = $2",
            list(request_ids),
            states.IN_PROGRESS,
        )
        return {r["request_id"] for r in rows}

    async def wake_checker(self) -> None:
        """Wake the checker once this transaction commits."""
        await self.conn.execute(f"NOTIFY {WAKE_CHANNEL}")

    async def request_state(self, request_id: str, *, lock: bool = False) -> domain.Request | None:
        """The request as the rules read it (a typed row)."""
        row = await self.request(request_id, lock=lock)
        return None if row is None else request_of(row)

    async def task_states(self, request_id: str) -> list[domain.Task]:
        """The request's current tasks as the rules read them."""
        return [task_of(r) for r in await self.tasks(request_id)]

    async def existing_requests(self, request_ids: Iterable[str]) -> set[str]:
        """Which of these request ids are ours."""
        rows = await self.conn.fetch(
            "SELECT request_id FROM requests WHERE request_id = ANY($1::text[])", sorted(set(request_ids))
        )
        return {r["request_id"] for r in rows}

    async def lock_requests(self, request_ids: Iterable[str]) -> None:
        """Lock these requests for the transaction, in request_id order (as every batch does)."""
        await self.conn.execute(
            "SELECT 1 FROM (SELECT request_id FROM requests WHERE request_id = ANY($1::text[])"
            " ORDER BY request_id FOR UPDATE) AS locked",
            sorted(set(request_ids)),
        )

    async def update_request(self, request_id: str, **fields: Any) -> None:
        clause, values = _set_clause(fields, _REQUEST_COLUMNS)
        await self.conn.execute(f"UPDATE requests SET {clause} WHERE request_id = $1", request_id, *values)

    async def add_transition(
        self,
        request_id: str,
        from_status: str | None,
        to_status: str,
        *,
        at: datetime,
        actor: str,
        detail: str | None = None,
    ) -> None:
        await self.conn.execute(
            "INSERT INTO transitions (request_id, from_status, to_status, at, actor, detail) VALUES ($1, $2, $3, $4, $5, $6)",
            request_id, from_status, to_status, at, actor, detail,
        )  # fmt: skip

    async def transitions(self, request_id: str) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT from_status, to_status, at, actor, detail FROM transitions WHERE request_id = $1 ORDER BY id",
            request_id,
        )
        return rows

    async def due_for_resolution(self, now: datetime, limit: int) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT request_id, sealed_input, traceparent FROM requests"
            " WHERE status = 'received' AND next_resolve_at <= $1"
            " ORDER BY next_resolve_at LIMIT $2",
            now,
            limit,
        )
        return rows

    async def overdue(self, now: datetime, limit: int) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT request_id FROM requests WHERE overdue_at IS NULL AND due_at <= $1 AND status = ANY($2::text[])"
            " ORDER BY due_at LIMIT $3",
            now,
            list(UNANSWERED_STATUSES),
            limit,
        )
        return [r["request_id"] for r in rows]

    async def list_requests(self, statuses: Sequence[str] | None, limit: int) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT request_id, kind, status, channel, subject_id, received_at, due_at, extended_at, completed_at,"
            " overdue_at FROM requests WHERE ($1::text[] IS NULL OR status = ANY($1::text[]))"
            " ORDER BY received_at DESC LIMIT $2",
            list(statuses) if statuses else None,
            limit,
        )
        return rows

    async def queue(self, statuses: Sequence[str] | None, limit: int, offset: int) -> list[asyncpg.Record]:
        """A page of requests in these states (None: every state), the nearest deadline first."""
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT request_id, kind, status, channel, subject_id, received_at, due_at, extended_at,"
            " extension_reason, overdue_at, approved_by, completed_at, traceparent FROM requests"
            " WHERE ($1::text[] IS NULL OR status = ANY($1::text[]))"
            " ORDER BY due_at, request_id LIMIT $2 OFFSET $3",
            list(statuses) if statuses else None,
            limit,
            offset,
        )
        return rows

    async def current_tasks(self, request_ids: Sequence[str]) -> list[asyncpg.Record]:
        """The current task of each participant of these requests (a page of the queue)."""
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT request_id, participant, status, attempt FROM tasks"
            " WHERE request_id = ANY($1::text[]) AND current ORDER BY request_id, participant",
            list(request_ids),
        )
        return rows

    async def due_before(self, until: datetime) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT request_id, kind, status, received_at, due_at, extended_at, overdue_at FROM requests"
            " WHERE status = ANY($1::text[]) AND due_at <= $2 ORDER BY due_at",
            list(UNANSWERED_STATUSES),
            until,
        )
        return rows

    # -- tasks ---------------------------------------------------------------------------------

    async def insert_task(
        self,
        *,
        task_id: str,
        request_id: str,
        participant: str,
        kind: str,
        categories: list[str],
        status: str,
        attempt: int,
        sent_at: datetime,
        timeout_at: datetime,
        hold_retained: list[dict[str, Any]],
        finished_at: datetime | None = None,
    ) -> None:
        await self.conn.execute(
            "INSERT INTO tasks (task_id, request_id, participant, kind, categories, status, attempt, first_sent_at,"
            " sent_at, timeout_at, hold_retained, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11)",
            task_id, request_id, participant, kind, categories, status, attempt, sent_at, timeout_at, hold_retained,
            finished_at,
        )  # fmt: skip

    async def insert_tasks(self, tasks: Sequence[dict[str, Any]]) -> None:
        """Many tasks (the keyword arguments of :meth:`insert_task` each) in one round trip."""
        if not tasks:
            return
        await self.conn.executemany(
            "INSERT INTO tasks (task_id, request_id, participant, kind, categories, status, attempt, first_sent_at,"
            " sent_at, timeout_at, hold_retained, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11)",
            [
                (
                    t["task_id"], t["request_id"], t["participant"], t["kind"], t["categories"], t["status"],
                    t["attempt"], t["sent_at"], t["timeout_at"], t["hold_retained"], t.get("finished_at"),
                )
                for t in tasks
            ],
        )  # fmt: skip

    async def task(self, task_id: str, *, lock: bool = False) -> asyncpg.Record | None:
        sql = "SELECT * FROM tasks WHERE task_id = $1" + (" FOR UPDATE" if lock else "")
        row: asyncpg.Record | None = await self.conn.fetchrow(sql, task_id)
        return row

    async def tasks_by_id(self, task_ids: Sequence[str], *, lock: bool = False) -> dict[str, Any]:
        """The tasks with these ids (those that exist), by id; ``lock`` locks them in id order."""
        sql = "SELECT * FROM tasks WHERE task_id = ANY($1::text[])" + (" ORDER BY task_id FOR UPDATE" if lock else "")
        rows = await self.conn.fetch(sql, sorted(set(task_ids)))
        return {r["task_id"]: r for r in rows}

    async def tasks(self, request_id: str, *, current_only: bool = True) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT * FROM tasks WHERE request_id = $1 AND (current OR NOT $2) ORDER BY participant, first_sent_at",
            request_id,
            current_only,
        )
        return rows

    async def update_task(self, task_id: str, **fields: Any) -> None:
        clause, values = _set_clause(fields, _TASK_COLUMNS)
        await self.conn.execute(f"UPDATE tasks SET {clause} WHERE task_id = $1", task_id, *values)

    async def cancel_open_tasks(self, request_id: str, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE tasks SET status = 'cancelled', finished_at = $2 WHERE request_id = $1 AND status = $3",
            request_id,
            at,
            TASK_OPEN,
        )

    async def clear_results(self, request_id: str) -> None:
        await self.conn.execute(
            "DELETE FROM result_parts WHERE task_id IN (SELECT task_id FROM tasks WHERE request_id = $1)", request_id
        )
        await self.conn.execute(
            "UPDATE tasks SET sealed_result = NULL, result_run = NULL WHERE request_id = $1", request_id
        )

    async def timed_out(self, now: datetime, limit: int) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT task_id, request_id FROM tasks WHERE status = $1 AND timeout_at <= $2 ORDER BY timeout_at LIMIT $3",
            TASK_OPEN,
            now,
            limit,
        )
        return rows

    async def record_ignored_ack(
        self,
        *,
        event_id: str,
        task_id: str,
        request_id: str,
        participant: str,
        ack_status: str,
        task_status: str,
        at: datetime,
    ) -> None:
        await self.conn.execute(
            "INSERT INTO ignored_acks (event_id, task_id, request_id, participant, ack_status, task_status, received_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            event_id, task_id, request_id, participant, ack_status, task_status, at,
        )  # fmt: skip

    async def add_result_part(self, task_id: str, part: int, data: str) -> int:
        """Keep one part of a (not streamed) sealed result; returns how many parts are held so
        far (not the parts: they are read once, when all are there)."""
        await self.conn.execute(
            "INSERT INTO result_parts (task_id, part, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            task_id, part, data,
        )  # fmt: skip
        count: int = await self.conn.fetchval(
            "SELECT count(*) FROM result_parts WHERE task_id = $1 AND run IS NULL", task_id
        )
        return count

    async def add_streamed_part(self, task_id: str, run: str, part: int, data: str, total: int | None) -> bool:
        """Keep one part of a streamed result's run (``total`` on its last part); True once
        every part of that run is held."""
        held = await self.conn.fetchrow(
            """
            WITH added AS (
                INSERT INTO result_parts (task_id, part, data, run, total) VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT DO NOTHING RETURNING 1
            )
            SELECT count(*) + (SELECT count(*) FROM added) AS parts,
                   coalesce(max(total), $5) AS total
            FROM result_parts WHERE task_id = $1 AND run = $4
            """,
            task_id, part, data, run, total,
        )  # fmt: skip
        return held is not None and held["total"] is not None and held["parts"] >= held["total"]

    async def result_parts(self, task_id: str) -> dict[int, str]:
        """Every part of a (not streamed) result, to be joined."""
        rows = await self.conn.fetch("SELECT part, data FROM result_parts WHERE task_id = $1 AND run IS NULL", task_id)
        return {r["part"]: r["data"] for r in rows}

    async def result_part(self, task_id: str, run: str, part: int) -> str | None:
        data: str | None = await self.conn.fetchval(
            "SELECT data FROM result_parts WHERE task_id = $1 AND run = $2 AND part = $3", task_id, run, part
        )
        return data

    async def drop_result_parts(self, task_id: str, *, keep_run: str | None = None) -> None:
        """Drop the task's parts (but those of ``keep_run``: the streamed result, until its package)."""
        await self.conn.execute(
            "DELETE FROM result_parts WHERE task_id = $1 AND run IS DISTINCT FROM $2", task_id, keep_run
        )

    async def ignored_acks(self, request_id: str) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT * FROM ignored_acks WHERE request_id = $1 ORDER BY id", request_id
        )
        return rows

    # -- packages ------------------------------------------------------------------------------

    async def save_package(
        self, request_id: str, chunks: Iterable[bytes], sha256: str, size: int, at: datetime
    ) -> None:
        """The package, as encrypted chunks in order (replacing any stored before)."""
        await self.conn.execute(
            "INSERT INTO packages (request_id, blob, sha256, size_bytes, created_at) VALUES ($1, NULL, $2, $3, $4)"
            " ON CONFLICT (request_id) DO UPDATE SET blob = NULL, sha256 = $2, size_bytes = $3, created_at = $4",
            request_id, sha256, size, at,
        )  # fmt: skip
        await self.conn.execute("DELETE FROM package_chunks WHERE request_id = $1", request_id)
        for n, chunk in enumerate(chunks):
            await self.conn.execute(
                "INSERT INTO package_chunks (request_id, n, blob) VALUES ($1, $2, $3)", request_id, n, chunk
            )

    async def package(self, request_id: str) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self.conn.fetchrow(
            "SELECT request_id, blob, sha256, size_bytes, created_at, expires_at, destroyed_at, destroyed_reason"
            " FROM packages WHERE request_id = $1",
            request_id,
        )
        return row

    async def package_chunks(self, request_id: str) -> list[bytes]:
        rows = await self.conn.fetch("SELECT blob FROM package_chunks WHERE request_id = $1 ORDER BY n", request_id)
        return [bytes(r["blob"]) for r in rows]

    # -- restrictions (Art. 18) -----------------------------------------------------------------

    async def is_restricted(self, subject_id: str) -> bool:
        found: bool | None = await self.conn.fetchval("SELECT true FROM restrictions WHERE subject_id = $1", subject_id)
        return bool(found)

    async def set_restricted(self, subject_id: str, restricted: bool, *, request_id: str, at: datetime) -> None:
        if not restricted:
            await self.conn.execute("DELETE FROM restrictions WHERE subject_id = $1", subject_id)
            return
        await self.conn.execute(
            "INSERT INTO restrictions (subject_id, request_id, restricted_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (subject_id) DO UPDATE SET request_id = $2, restricted_at = $3",
            subject_id, request_id, at,
        )  # fmt: skip

    async def lift_notices_out(self, limit: int) -> list[str]:
        """Restriction lifts whose notice has left the outbox (Kafka has it): their tasks may go."""
        rows = await self.conn.fetch(
            "SELECT request_id FROM requests r WHERE status = 'accepted' AND lift_notice_at IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.key = r.request_id"
            " AND o.event_type = 'dsar.restriction_lift_notice') ORDER BY lift_notice_at LIMIT $1",
            limit,
        )
        return [r["request_id"] for r in rows]

    # -- legal holds ---------------------------------------------------------------------------

    async def set_holds(self, customer_number: str, holds: list[dict[str, Any]]) -> None:
        if not holds:
            await self.conn.execute("DELETE FROM legal_holds WHERE customer_number = $1", customer_number)
            return
        await self.conn.execute(
            "INSERT INTO legal_holds (customer_number, holds, updated_at) VALUES ($1, $2, now())"
            " ON CONFLICT (customer_number) DO UPDATE SET holds = $2, updated_at = now()",
            customer_number,
            holds,
        )

    async def holds_for(self, customer_numbers: Iterable[str]) -> list[Hold]:
        from lampo.dsar.domain import Hold

        rows = await self.conn.fetch(
            "SELECT holds FROM legal_holds WHERE customer_number = ANY($1::text[]) ORDER BY customer_number",
            list(customer_numbers),
        )
        return [Hold.model_validate(h) for r in rows for h in r["holds"]]


def request_of(row: asyncpg.Record) -> domain.Request:
    from lampo.dsar import domain

    return domain.Request(
        request_id=row["request_id"],
        kind=row["kind"],
        status=row["status"],
        received_at=row["received_at"],
        due_at=row["due_at"],
        categories=tuple(row["categories"]) if row["categories"] is not None else None,
        customer_numbers=tuple(row["customer_numbers"] or ()),
        approved_by=row["approved_by"],
        denied_by=row["denied_by"],
        extended_at=row["extended_at"],
        overdue_at=row["overdue_at"],
        resolve_attempts=row["resolve_attempts"],
        scope=row["scope"],
        lift=row["lift"],
        lift_notice_at=row["lift_notice_at"],
        reject_reason=row["reject_reason"],
        reject_detail=row["reject_detail"],
        completion=row["completion"],
    )


def task_of(row: asyncpg.Record) -> domain.Task:
    from lampo.dsar import domain

    return domain.Task(
        task_id=row["task_id"],
        participant=row["participant"],
        kind=row["kind"],
        categories=tuple(row["categories"]),
        status=row["status"],
        attempt=row["attempt"],
        timeout_at=row["timeout_at"],
        hold_retained=tuple(row["hold_retained"]),
        erased=dict(row["erased"]),
        retained=tuple(row["retained"]),
        effects=tuple(row["effects"]),
        error=row["error"],
    )
