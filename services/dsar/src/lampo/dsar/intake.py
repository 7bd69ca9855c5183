"""Intake: a request taken in from any channel (Kafka, HTTP, CLI), stored with its input sealed,
or rejected at once (unverified, invalid); a request_id already known is answered again as it
was. The rules (what is rejected, the first transition) are the domain's."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import asyncpg

from lampo.contracts.dsar import DsarAccepted, DsarAwaitingApproval, DsarCompleted, DsarRejected, DsarSubmitted
from lampo.dsar import domain
from lampo.dsar.store import DsarStore

if TYPE_CHECKING:
    from lampo.dsar.coordinator import Coordinator


def _scope(req: DsarSubmitted) -> list[str] | None:
    """The request's categories: as asked, or for a rectification those of the corrected sections."""
    if req.categories:
        return [str(c) for c in req.categories]
    if req.corrections is not None:
        return domain.rectification_scope(req.corrections.sections_present())
    return None


async def submit(
    c: Coordinator,
    conn: asyncpg.Connection,
    req: DsarSubmitted,
    *,
    actor: str,
    traceparent: str | None,
    raw: Mapping[str, Any] | None = None,
) -> tuple[asyncpg.Record, bool]:
    """Take a request in: (the request, True) when new; (the existing one, False) for a
    request_id already known, which is answered again as it was (no second request).
    ``raw``: the request's data as sent, to find what the contract's tolerant reading drops
    (a correction naming a section that does not exist): such a request is rejected."""
    problem = domain.intake_problem(raw) if raw is not None else None
    if problem is not None:
        return await c.reject_invalid(
            conn, request_id=req.request_id, kind=req.kind, reason="schema", detail=problem,
            channel=req.channel, actor=actor, traceparent=traceparent,
        )  # fmt: skip
    store = DsarStore(conn)
    existing = await store.request(req.request_id, lock=True)
    if existing is not None:
        await answer_duplicate(c, store, existing, actor)
        return existing, False
    sealed: bytes | None = None
    if req.verification is not None:
        cipher = await c.keys.cipher(conn, domain.input_key(req.request_id), create=True)
        payload = {
            "identifiers": req.identifiers.model_dump(mode="json", exclude_none=True),
            "corrections": req.corrections.model_dump(mode="json", exclude_none=True) if req.corrections else None,
        }
        sealed = cipher.encrypt("input", json.dumps(payload))
    created = await store.insert_request(
        request_id=req.request_id,
        kind=req.kind,
        status=domain.RECEIVED,
        channel=req.channel,
        verification=req.verification.model_dump(mode="json") if req.verification else None,
        categories=_scope(req),
        sealed_input=sealed,
        received_at=req.received_at,
        due_at=domain.due_at(req.received_at),
        traceparent=traceparent,
        next_resolve_at=c.clock.now() if sealed is not None else None,
        scope=req.scope,
        lift=req.lift,
    )
    if not created:  # a concurrent intake of the same id won
        row = await store.request(req.request_id, lock=True)
        assert row is not None
        await answer_duplicate(c, store, row, actor)
        return row, False
    await store.add_transition(
        req.request_id, None, domain.RECEIVED, at=c.clock.now(), actor=actor, detail=f"channel {req.channel}"
    )
    row = await store.request(req.request_id, lock=True)
    assert row is not None
    if req.verification is None:
        reject = domain.Reject("unverified", "verification: missing; the requester must be verified first")
        await c._decide(conn, req.request_id, reject)
    else:
        await store.wake_checker()
    final = await store.request(req.request_id)
    assert final is not None
    return final, True


async def reject_invalid(
    c: Coordinator,
    conn: asyncpg.Connection,
    *,
    request_id: str,
    kind: str,
    reason: str,
    detail: str,
    channel: str,
    actor: str,
    traceparent: str | None,
    raw: Mapping[str, Any] | None = None,
) -> tuple[asyncpg.Record, bool]:
    """A request that breaks the contract but whose request_id can be read: stored as
    rejected (``invalid``) so that it is answered, and answered the same way if sent again.
    With ``raw`` (the data as sent), a correction naming no such section is named as the
    fault (the contract's reading dropped it, and may only have seen an empty correction)."""
    problem = domain.intake_problem(raw) if raw is not None else None
    if problem is not None:
        reason, detail = "schema", problem
    store = DsarStore(conn)
    existing = await store.request(request_id, lock=True)
    if existing is not None:
        await answer_duplicate(c, store, existing, actor)
        return existing, False
    now = c.clock.now()
    known_kinds = ("access", "portability", "erasure", "rectification", "restriction", "objection")
    created = await store.insert_request(
        request_id=request_id,
        kind=kind if kind in known_kinds else "unknown",
        status=domain.RECEIVED,
        channel=channel,
        verification=None,
        categories=None,
        sealed_input=None,
        received_at=now,
        due_at=domain.due_at(now),
        traceparent=traceparent,
        next_resolve_at=None,
    )
    row = await store.request(request_id, lock=True)
    assert row is not None
    if not created:
        await answer_duplicate(c, store, row, actor)
        return row, False
    await store.add_transition(request_id, None, domain.RECEIVED, at=now, actor=actor, detail=f"channel {channel}")
    await c._decide(conn, request_id, domain.Reject("invalid", f"{detail} ({reason})"))
    final = await store.request(request_id)
    assert final is not None
    return final, True


async def answer_duplicate(c: Coordinator, store: DsarStore, req: asyncpg.Record, actor: str) -> None:
    rid, status, tp = req["request_id"], req["status"], req["traceparent"]
    await store.add_transition(
        rid,
        status,
        status,
        at=c.clock.now(),
        actor=actor,
        detail="duplicate request_id: answered with the existing request",
    )
    if status == domain.REJECTED:
        await c._emit(
            store.conn,
            "dsar.rejected",
            DsarRejected(request_id=rid, reason=req["reject_reason"], detail=req["reject_detail"]),
            rid,
            tp,
        )
    elif status == domain.AWAITING_APPROVAL:
        await c._emit(
            store.conn, "dsar.awaiting_approval", DsarAwaitingApproval(request_id=rid, kind=req["kind"]), rid, tp
        )
    elif status in (domain.ACCEPTED, domain.IN_PROGRESS):
        participants = [t["participant"] for t in await store.tasks(rid)]
        accepted = DsarAccepted(request_id=rid, kind=req["kind"], due_at=req["due_at"], participants=participants)
        await c._emit(store.conn, "dsar.accepted", accepted, rid, tp)
    elif req["completion"] is not None:
        await c._emit(store.conn, "dsar.completed", DsarCompleted.model_validate(req["completion"]), rid, tp)
