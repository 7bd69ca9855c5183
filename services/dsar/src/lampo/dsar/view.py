"""The read view of a request: its state, participants and timings, and its history. No
personal data: pseudonymous ids, facts and times."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from lampo.dsar import states
from lampo.dsar.errors import UnknownRequest
from lampo.dsar.store import DsarStore


async def view(conn: asyncpg.Connection, request_id: str, *, package_uri: Callable[[str], str]) -> dict[str, Any]:
    """The request's state, participants and timings, history: no personal data."""
    store = DsarStore(conn)
    req = await store.request(request_id)
    if req is None:
        raise UnknownRequest()
    from lampo.tracing import trace_id_of  # the tracing SDK: only once there is a request to show

    tasks = await store.tasks(request_id, current_only=False)
    pkg = await store.package(request_id)
    return {
        "request_id": request_id,
        "kind": req["kind"],
        "status": req["status"],
        "channel": req["channel"],
        "subject_id": req["subject_id"],
        "received_at": req["received_at"],
        "due_at": req["due_at"],
        "extended": None
        if req["extended_at"] is None
        else {"at": req["extended_at"], "by": req["extended_by"], "reason": req["extension_reason"]},
        "overdue": req["overdue_at"] is not None,
        "approved_by": req["approved_by"],
        "approved_at": req["approved_at"],
        "denied_by": req["denied_by"],
        "rejection": None
        if req["reject_reason"] is None
        else {"reason": req["reject_reason"], "detail": req["reject_detail"]},
        "waiting_for": req["resolve_error"],
        "completed_at": req["completed_at"],
        "scope": req["scope"],
        "lift": req["lift"],
        "lift_notice_at": req["lift_notice_at"],
        "trace_id": trace_id_of(req["traceparent"]),
        "participants": [
            {
                "participant": t["participant"],
                "task_id": t["task_id"],
                "kind": t["kind"],
                "status": t["status"],
                "current": t["current"],
                "attempt": t["attempt"],
                "first_sent_at": t["first_sent_at"],
                "last_sent_at": t["sent_at"],
                "timeout_at": t["timeout_at"] if t["status"] == states.TASK_OPEN else None,
                "finished_at": t["finished_at"],
                "seconds": (t["finished_at"] - t["first_sent_at"]).total_seconds() if t["finished_at"] else None,
                "error": t["error"],
                "erased": t["erased"],
                "effects": t["effects"],
                "retained": [*t["hold_retained"], *t["retained"]],
            }
            for t in tasks
        ],
        "package": None
        if pkg is None
        else {
            "uri": package_uri(request_id),
            "sha256": pkg["sha256"],
            "size_bytes": pkg["size_bytes"],
            "expires_at": pkg["expires_at"],
            "destroyed": None
            if pkg["destroyed_at"] is None
            else {"at": pkg["destroyed_at"], "reason": pkg["destroyed_reason"]},
        },
        "completion": req["completion"],
        "history": [dict(t) for t in await store.transitions(request_id)],
    }


async def queue(conn: asyncpg.Connection, statuses: list[str] | None, *, limit: int, offset: int) -> dict[str, Any]:
    """A page of requests in these states (None: every state), the nearest deadline first, each
    with the status of its participants' current tasks: no personal data."""
    from lampo.tracing import trace_id_of

    store = DsarStore(conn)
    # One row more than the page: whether another page follows.
    rows = await store.queue(statuses, limit + 1, offset)
    page = rows[:limit]
    tasks: dict[str, list[dict[str, Any]]] = {}
    for t in await store.current_tasks([r["request_id"] for r in page]):
        tasks.setdefault(t["request_id"], []).append(
            {"participant": t["participant"], "status": t["status"], "attempt": t["attempt"]}
        )
    return {
        "requests": [
            {
                "request_id": r["request_id"],
                "kind": r["kind"],
                "status": r["status"],
                "channel": r["channel"],
                "subject_id": r["subject_id"],
                "received_at": r["received_at"],
                "due_at": r["due_at"],
                "extended": None
                if r["extended_at"] is None
                else {"at": r["extended_at"], "reason": r["extension_reason"]},
                "overdue": r["overdue_at"] is not None,
                "approved_by": r["approved_by"],
                "completed_at": r["completed_at"],
                "trace_id": trace_id_of(r["traceparent"]),
                "participants": tasks.get(r["request_id"], []),
            }
            for r in page
        ],
        "offset": offset,
        "next_offset": offset + limit if len(rows) > limit else None,
    }
