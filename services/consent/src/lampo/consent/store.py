"""Every SQL statement of the consent service. Batch-shaped: a batch of inbound events costs a
fixed handful of round trips, whatever its size, so the ledger keeps up with bursts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from lampo.consent.domain import ConsentEvent, Current, Decision, Purpose

PURPOSES = "SELECT purpose, legal_description, consent_text_version, objection_scopes, objection_basis FROM purposes"
LOCK_CUSTOMERS = "SELECT pg_advisory_xact_lock(hashtext('consent:' || c)) FROM unnest($1::text[]) AS c ORDER BY c"
STATES = (
    "SELECT customer_number, purpose, state, effective_at, event_id, scope FROM consent_state"
    " WHERE customer_number = ANY($1::text[])"
)
SUPPRESSIONS = "SELECT customer_number, scope, since FROM suppressions WHERE customer_number = ANY($1::text[])"
# Batch writes pass one array per column (a single statement per table, whatever the batch size).
INSERT_LEDGER = (
    "INSERT INTO ledger (event_id, customer_number, kind, purpose, scope, channel, at, consent_text_version,"
    " source, outcome, state_after, note)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
    " $7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])"
    " ON CONFLICT (event_id, purpose) DO NOTHING"
)
UPSERT_STATE = (
    "INSERT INTO consent_state (customer_number, purpose, state, effective_at, event_id, scope)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[])"
    " ON CONFLICT (customer_number, purpose) DO UPDATE SET"
    " state = EXCLUDED.state, effective_at = EXCLUDED.effective_at, event_id = EXCLUDED.event_id, scope = EXCLUDED.scope"
)
INSERT_RECEIPT = (
    "INSERT INTO receipts (receipt_id, customer_number, purpose, event_id, issued_at, receipt)"
    " SELECT r.id, r.cn, r.p, r.e, r.at, r.body::jsonb"
    " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[]) AS r(id, cn, p, e, at, body)"
)
LEDGER_OF = (
    "SELECT event_id, kind, purpose, scope, channel, at, consent_text_version, source, outcome, state_after, note,"
    " recorded_at FROM ledger WHERE customer_number = $1 ORDER BY entry_id"
)
RECEIPTS_OF = "SELECT receipt FROM receipts WHERE customer_number = $1 ORDER BY issued_at, receipt_id"
ERASE = "SELECT ledger_rows, receipt_rows FROM erase_customer($1, $2)"
RESTRICTED_SINCE = "SELECT since FROM restrictions WHERE customer_number = $1"
RESTRICT = (
    "INSERT INTO restrictions (customer_number, since, request_id) VALUES ($1, $2, $3)"
    " ON CONFLICT (customer_number) DO NOTHING"
)
LIFT_RESTRICTION = "DELETE FROM restrictions WHERE customer_number = $1"
HELD_ROWS = (
    "SELECT (SELECT count(*) FROM ledger WHERE customer_number = $1)"
    " + (SELECT count(*) FROM receipts WHERE customer_number = $1)"
    " + (SELECT count(*) FROM consent_state WHERE customer_number = $1)"
    " + (SELECT count(*) FROM suppressions WHERE customer_number = $1)"
)
# For the privacy centre: how each current state came to be (the ledger's channel) and the
# receipt issued for it, if the event changed the state.
CURRENT_ORIGINS = (
    "SELECT s.purpose, l.channel, l.source, r.receipt_id FROM consent_state s"
    " LEFT JOIN ledger l ON l.event_id = s.event_id AND l.purpose = s.purpose AND l.customer_number = s.customer_number"
    " LEFT JOIN LATERAL (SELECT receipt_id FROM receipts x WHERE x.customer_number = s.customer_number"
    "  AND x.purpose = s.purpose AND x.event_id = s.event_id ORDER BY x.issued_at DESC, x.receipt_id LIMIT 1) r ON true"
    " WHERE s.customer_number = $1"
)
RECEIPT_OF_EVENT = "SELECT receipt_id FROM receipts WHERE customer_number = $1 AND event_id = $2 AND purpose = $3"
RECEIPT = "SELECT receipt FROM receipts WHERE customer_number = $1 AND receipt_id = $2"
RECEIPT_LIST = (
    "SELECT receipt_id, purpose, issued_at, receipt->'services'->0->'purposes'->0->>'state' AS state,"
    " receipt->>'collectionMethod' AS channel FROM receipts WHERE customer_number = $1"
    " ORDER BY issued_at DESC, receipt_id"
)
KNOWN = (
    "SELECT EXISTS (SELECT 1 FROM consent_state WHERE customer_number = $1)"
    " OR EXISTS (SELECT 1 FROM ledger WHERE customer_number = $1)"
    " OR EXISTS (SELECT 1 FROM suppressions WHERE customer_number = $1)"
    " OR EXISTS (SELECT 1 FROM restrictions WHERE customer_number = $1)"
)


@dataclass(frozen=True)
class LedgerEntry:
    event: ConsentEvent
    purpose: Purpose
    decision: Decision


def columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows to one list per column, for ``unnest``."""
    return [[row[i] for row in rows] for i in range(width)]


def _purpose(row: asyncpg.Record) -> Purpose:
    return Purpose(
        row["purpose"],
        row["legal_description"],
        row["consent_text_version"],
        frozenset(row["objection_scopes"]),
        row["objection_basis"],
    )


class ConsentStore:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def purposes(self) -> dict[str, Purpose]:
        return {r["purpose"]: _purpose(r) for r in await self.conn.fetch(PURPOSES)}

    async def lock(self, customer_numbers: Iterable[str]) -> None:
        """Serialise work on the same customers (inbound events vs. an erasure) for this transaction."""
        await self.conn.execute(LOCK_CUSTOMERS, sorted(set(customer_numbers)))

    async def current(
        self, customer_numbers: Sequence[str], purposes: dict[str, Purpose]
    ) -> dict[tuple[str, str], Current]:
        """The current state of each (customer, purpose) held; a suppression entry kept after an
        erasure stands for ``objected`` where no newer state exists."""
        found: dict[tuple[str, str], Current] = {}
        for r in await self.conn.fetch(SUPPRESSIONS, list(customer_numbers)):
            for p in purposes.values():
                if r["scope"] in p.objection_scopes:
                    found[(r["customer_number"], p.name)] = Current(
                        "objected", r["since"], "suppression", r["scope"], suppressed=True
                    )
        for r in await self.conn.fetch(STATES, list(customer_numbers)):
            found[(r["customer_number"], r["purpose"])] = Current(
                r["state"], r["effective_at"], r["event_id"], r["scope"]
            )
        return found

    async def record(
        self, entries: Sequence[LedgerEntry], receipts: Sequence[tuple[LedgerEntry, dict[str, Any]]]
    ) -> None:
        """Write ledger rows for every entry, the new current states, and the receipts."""
        rows = [
            (
                e.event.event_id,
                e.event.customer_number,
                e.event.kind,
                e.decision.purpose,
                e.event.scope,
                e.event.channel,
                e.event.at,
                e.purpose.consent_text_version,
                e.event.source,
                e.decision.outcome,
                e.decision.state_after,
                e.decision.note,
            )
            for e in entries
        ]
        if rows:
            await self.conn.execute(INSERT_LEDGER, *columns(rows, 12))
        # The last decision per (customer, purpose) is the state to keep.
        latest: dict[tuple[str, str], Current] = {}
        for e in entries:
            if e.decision.outcome != "stale":
                latest[(e.event.customer_number, e.decision.purpose)] = e.decision.current
        if latest:
            states = [(cn, p, c.state, c.effective_at, c.event_id, c.scope) for (cn, p), c in latest.items()]
            await self.conn.execute(UPSERT_STATE, *columns(states, 6))
        if receipts:
            bodies = [
                (
                    uuid.UUID(r["consentReceiptID"]),
                    e.event.customer_number,
                    e.decision.purpose,
                    e.event.event_id,
                    e.event.at,
                    json.dumps(r, ensure_ascii=False),
                )
                for e, r in receipts
            ]
            await self.conn.execute(INSERT_RECEIPT, *columns(bodies, 6))

    async def ledger_of(self, customer_number: str) -> list[dict[str, Any]]:
        return [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(r).items()}
            for r in await self.conn.fetch(LEDGER_OF, customer_number)
        ]

    async def receipts_of(self, customer_number: str) -> list[dict[str, Any]]:
        # jsonb comes back as Python objects (the platform pool's codec)
        return [r["receipt"] for r in await self.conn.fetch(RECEIPTS_OF, customer_number)]

    async def erase(self, customer_number: str, at: datetime) -> tuple[int, int]:
        """Remove the customer's ledger, receipts and state; current objections become
        suppression entries. Returns (ledger rows, receipts) removed."""
        row = await self.conn.fetchrow(ERASE, customer_number, at)
        assert row is not None
        await self.conn.execute(LIFT_RESTRICTION, customer_number)  # nothing left to restrict
        return int(row["ledger_rows"]), int(row["receipt_rows"])

    async def restricted_since(self, customer_number: str) -> datetime | None:
        since: datetime | None = await self.conn.fetchval(RESTRICTED_SINCE, customer_number)
        return since

    async def restrict(self, customer_number: str, since: datetime, request_id: str) -> None:
        await self.conn.execute(RESTRICT, customer_number, since, request_id)

    async def lift_restriction(self, customer_number: str) -> bool:
        status: str = await self.conn.execute(LIFT_RESTRICTION, customer_number)
        return status != "DELETE 0"

    async def held_rows(self, customer_number: str) -> int:
        """Ledger rows, receipts, current states and suppression entries held for the customer."""
        count: int = await self.conn.fetchval(HELD_ROWS, customer_number)
        return count

    async def current_origins(self, customer_number: str) -> dict[str, asyncpg.Record]:
        """Per purpose with a current state: the ledger's ``channel`` and ``source`` of the event
        that set it, and the ``receipt_id`` issued for it (None where the event changed nothing)."""
        return {r["purpose"]: r for r in await self.conn.fetch(CURRENT_ORIGINS, customer_number)}

    async def receipt_of_event(self, customer_number: str, event_id: str, purpose: str) -> uuid.UUID | None:
        found: uuid.UUID | None = await self.conn.fetchval(RECEIPT_OF_EVENT, customer_number, event_id, purpose)
        return found

    async def receipt(self, customer_number: str, receipt_id: uuid.UUID) -> dict[str, Any] | None:
        """One receipt of the customer (None: not theirs, or none such)."""
        body: dict[str, Any] | None = await self.conn.fetchval(RECEIPT, customer_number, receipt_id)
        return body

    async def receipt_list(self, customer_number: str) -> list[asyncpg.Record]:
        """The customer's receipts, newest first: id, purpose, issued_at, state, channel."""
        rows: list[asyncpg.Record] = await self.conn.fetch(RECEIPT_LIST, customer_number)
        return rows

    async def suppressions_of(self, customer_number: str) -> list[str]:
        rows = await self.conn.fetch(SUPPRESSIONS, [customer_number])
        return sorted(r["scope"] for r in rows)


async def known(conn: asyncpg.Connection, customer_number: str) -> bool:
    """Does the consent service hold anything about this customer number (the resolve route)?"""
    found: bool = await conn.fetchval(KNOWN, customer_number)
    return found


async def purpose_and_state(
    conn: asyncpg.Connection, customer_number: str, purpose: str
) -> tuple[Purpose | None, Current | None, datetime | None]:
    """What the query command needs: the purpose, the customer's current state of it, and since
    when the customer's processing is restricted (None: it is not)."""
    store = ConsentStore(conn)
    purposes = await store.purposes()
    restricted = await store.restricted_since(customer_number)
    if purpose not in purposes:
        return None, None, restricted
    current = await store.current([customer_number], purposes)
    return purposes[purpose], current.get((customer_number, purpose)), restricted
