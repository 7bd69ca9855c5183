"""Identity: requests waiting for their subject are resolved (the registry, then the stores) and
the outcome handed to the rules: rejected (no_match), waiting for approval, or accepted and
fanned out. A resolver that does not answer makes the request wait, with backoff."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg

from lampo.crypto import KeyDestroyed
from lampo.dsar import domain
from lampo.dsar.resolver import RegistryUnavailable, Resolved, Unresolved
from lampo.dsar.store import DsarStore, request_of
from lampo.tracing import FLOW, PRIVACY, TRACEPARENT, context_from_headers

if TYPE_CHECKING:
    from lampo.dsar.coordinator import Coordinator

log = logging.getLogger("lampo.dsar")


async def resolve_due(c: Coordinator, limit: int = 500) -> int:
    """Resolve waiting requests through the registry; a registry that does not answer makes
    them wait and try again with backoff. Returns how many were looked at."""
    now = c.clock.now()
    work: list[tuple[str, dict[str, str] | None, str | None]] = []
    async with c._pool().acquire() as conn:
        for row in await DsarStore(conn).due_for_resolution(now, limit):
            identifiers = None
            if row["sealed_input"] is not None:
                try:
                    cipher = await c.keys.cipher(conn, domain.input_key(row["request_id"]))
                    identifiers = json.loads(cipher.decrypt("input", bytes(row["sealed_input"])) or "{}")["identifiers"]
                except KeyDestroyed:
                    identifiers = None
            work.append((row["request_id"], identifiers, row["traceparent"]))
    if not work:
        return 0
    gate = asyncio.Semaphore(max(1, c.settings.resolve_concurrency))

    async def one(request_id: str, identifiers: dict[str, str] | None, traceparent: str | None) -> None:
        # In the request's trace: the registry's and the stores' answers (HTTP) are part of it.
        parent = context_from_headers({TRACEPARENT: traceparent}) if traceparent else None
        attributes = {"lampo.request_id": request_id, FLOW: PRIVACY}
        async with gate:
            with c.tracer.start_as_current_span("dsar resolve", context=parent, attributes=attributes):
                outcome: Resolved | Unresolved | RegistryUnavailable
                if identifiers is None:
                    outcome = Unresolved("invalid", "identifiers: none stored for this request")
                else:
                    try:
                        outcome = await c.resolver.resolve(identifiers)
                    except RegistryUnavailable as e:
                        outcome = e
                async with c._pool().acquire() as conn, conn.transaction():
                    await c.apply_resolution(conn, request_id, outcome)

    await asyncio.gather(*(one(rid, ids, tp) for rid, ids, tp in work))
    return len(work)


async def apply_resolution(
    c: Coordinator, conn: asyncpg.Connection, request_id: str, outcome: Resolved | Unresolved | RegistryUnavailable
) -> None:
    store = DsarStore(conn)
    row = await store.request(request_id, lock=True)
    if row is None or row["status"] != domain.RECEIVED:
        return
    req = request_of(row)
    command: domain.Command
    if isinstance(outcome, RegistryUnavailable):
        command = domain.ResolverDown(str(outcome))
        log.warning("dsar %s: registry unavailable (%s); retrying", request_id, outcome)
    elif isinstance(outcome, Unresolved):
        command = domain.Reject(outcome.reason, outcome.detail)
    else:
        command = domain.Resolve(
            subject_id=outcome.subject_id,
            customer_numbers=tuple(outcome.customer_numbers),
            subject_kind=outcome.kind,
            restricted=req.lift and await store.is_restricted(outcome.subject_id),
            holds=tuple(await legal_holds(store, req.kind, outcome.customer_numbers)),
        )
    await c._decide(conn, request_id, command, read=(row, []))  # no tasks before it is accepted


async def legal_holds(store: DsarStore, kind: str, customer_numbers: Sequence[str]) -> list[domain.Hold]:
    return await store.holds_for(customer_numbers) if kind == "erasure" and customer_numbers else []
