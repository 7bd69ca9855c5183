"""Every SQL statement of the billing store.

Items are keyed by customer number; their content (lines, amounts, agency, provider, verdict)
is one JSON payload encrypted with the customer's data key. The key's subject id in the key
ring is a random pseudonymous ``key_id`` mapped from the customer number, so destroying it
shreds every item of that customer, in the table and in any backup.

"Normal" reads (``active_items``) never see restricted items: those kept only because a statute
requires it after an erasure, or restricted at the subject's request (GDPR Art. 18).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from lampo.crypto import FieldCipher, KeyDestroyed, KeyRing
from lampo.messaging import outbox


@dataclass(frozen=True)
class StoredItem:
    item_id: str
    kind: str
    invoice_number: str | None
    occurred_at: datetime
    payload: bytes
    restricted_reason: str | None
    delete_after: date | None


def field_of(kind: str, item_id: str) -> str:
    """Associated data of an item's ciphertext: it cannot be moved to another item unnoticed."""
    return f"{kind}:{item_id}"


class BillingStore:
    def __init__(self, conn: asyncpg.Connection, keys: KeyRing) -> None:
        self.conn = conn
        self.keys = keys

    # -- customers and their keys -----------------------------------------------------------

    async def key_id(self, customer_number: str) -> str | None:
        found: str | None = await self.conn.fetchval(
            "SELECT key_id FROM customers WHERE customer_number = $1", customer_number
        )
        return found

    async def cipher_for_ingest(self, customer_number: str) -> tuple[str, FieldCipher]:
        key_id = await self.conn.fetchval(
            """
            INSERT INTO customers (customer_number, key_id) VALUES ($1, $2)
            ON CONFLICT (customer_number) DO UPDATE SET customer_number = EXCLUDED.customer_number
            RETURNING key_id
            """,
            customer_number,
            str(uuid.uuid4()),
        )
        return key_id, await self.keys.cipher(self.conn, key_id, create=True)

    async def cipher(self, customer_number: str) -> FieldCipher | None:
        key_id = await self.key_id(customer_number)
        if key_id is None:
            return None
        try:
            return await self.keys.cipher(self.conn, key_id, create=False)
        except KeyDestroyed:
            return None

    async def mark_erased(self, customer_number: str, at: datetime) -> None:
        await self.conn.execute("UPDATE customers SET erased_at = $2 WHERE customer_number = $1", customer_number, at)

    async def forget_customer(self, customer_number: str) -> bool:
        """Destroy the customer's data key and every row about them (items cascade)."""
        key_id = await self.key_id(customer_number)
        if key_id is None:
            return False
        await self.keys.destroy(self.conn, key_id)
        await outbox.purge_subject(self.conn, key_id)
        await self.conn.execute("DELETE FROM customers WHERE customer_number = $1", customer_number)
        return True

    # -- items --------------------------------------------------------------------------------

    async def invoice_exists(self, customer_number: str, invoice_number: str) -> bool:
        found: bool = await self.conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM items WHERE customer_number = $1 AND kind = 'invoice' AND invoice_number = $2)",
            customer_number,
            invoice_number,
        )
        return found

    async def add_item(
        self,
        item_id: str,
        customer_number: str,
        *,
        kind: str,
        invoice_number: str | None,
        occurred_at: datetime,
        payload: bytes,
    ) -> bool:
        """Store an item; an invoice number already stored for the customer is not stored twice."""
        # An item arriving while its customer is restricted (Art. 18) is stored restricted.
        status: str = await self.conn.execute(
            """
            INSERT INTO items (item_id, customer_number, kind, invoice_number, occurred_at, payload,
                               restricted_at, restricted_reason)
            SELECT $1, $2, $3, $4, $5, $6, c.restricted_at, CASE WHEN c.restricted_at IS NULL THEN NULL ELSE 'restriction' END
              FROM customers c WHERE c.customer_number = $2
            ON CONFLICT DO NOTHING
            """,
            item_id,
            customer_number,
            kind,
            invoice_number,
            occurred_at,
            payload,
        )
        return status.endswith(" 1")

    async def active_items(self, customer_number: str) -> list[dict[str, Any]]:
        """A normal query: restricted items are not part of it."""
        rows = await self.conn.fetch(
            "SELECT item_id, kind, invoice_number, occurred_at FROM active_items WHERE customer_number = $1"
            " ORDER BY occurred_at, item_id",
            customer_number,
        )
        return [dict(r) for r in rows]

    async def all_items(self, customer_number: str) -> list[StoredItem]:
        """Every item, restricted ones included: for the subject's own requests only. The day an
        item kept by an erasure goes is looked up per item (its primary key), not joined: the
        planner hashed the whole of scheduled_deletions, which grows with every erasure handled,
        for each subject (1,500 rows read per erasure in the suite benchmark)."""
        rows = await self.conn.fetch(
            """
            SELECT i.item_id, i.kind, i.invoice_number, i.occurred_at, i.payload, i.restricted_reason,
                   (SELECT s.delete_after FROM scheduled_deletions s WHERE s.item_id = i.item_id) AS delete_after
              FROM items i
             WHERE i.customer_number = $1
             ORDER BY i.occurred_at, i.item_id
            """,
            customer_number,
        )
        return [
            StoredItem(
                r["item_id"],
                r["kind"],
                r["invoice_number"],
                r["occurred_at"],
                bytes(r["payload"]),
                r["restricted_reason"],
                r["delete_after"],
            )
            for r in rows
        ]

    async def delete_items(self, item_ids: list[str]) -> int:
        if not item_ids:
            return 0
        status: str = await self.conn.execute("DELETE FROM items WHERE item_id = ANY($1::text[])", item_ids)
        return int(status.rsplit(maxsplit=1)[-1])

    async def restrict(self, item_ids: list[str], reason: str, at: datetime) -> None:
        """Restrict items; a statutory restriction overrides one made at the subject's request."""
        if not item_ids:
            return
        await self.conn.execute(
            """
            UPDATE items SET restricted_at = COALESCE(restricted_at, $3), restricted_reason = $2
             WHERE item_id = ANY($1::text[]) AND (restricted_reason IS DISTINCT FROM 'retention' OR $2 = 'retention')
            """,
            item_ids,
            reason,
            at,
        )

    async def restrict_customer(self, customer_number: str, at: datetime | None) -> None:
        """Mark (``at``) or unmark (None) the customer as restricted at their request."""
        await self.conn.execute(
            "UPDATE customers SET restricted_at = CASE WHEN $2::timestamptz IS NULL THEN NULL"
            " ELSE COALESCE(restricted_at, $2) END WHERE customer_number = $1",
            customer_number,
            at,
        )

    async def lift_restriction(self, customer_number: str) -> int:
        """Lift the subject's own restriction from their items; statutory ones ('retention') stay."""
        status: str = await self.conn.execute(
            "UPDATE items SET restricted_at = NULL, restricted_reason = NULL"
            " WHERE customer_number = $1 AND restricted_reason = 'restriction'",
            customer_number,
        )
        return int(status.rsplit(maxsplit=1)[-1])

    async def known(self, customer_number: str) -> bool:
        found: bool = await self.conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM customers WHERE customer_number = $1)", customer_number
        )
        return found

    async def restricted_at(self, customer_number: str) -> tuple[bool, datetime | None]:
        """(known here, since when the customer is restricted at their request or None)."""
        row = await self.conn.fetchrow(
            "SELECT restricted_at FROM customers WHERE customer_number = $1", customer_number
        )
        return (row is not None, row["restricted_at"] if row is not None else None)

    # -- legal holds --------------------------------------------------------------------------

    async def set_holds(self, customer_number: str, hold_ids: list[str], holds_billing: bool) -> None:
        """Billing's copy of the holds standing for the customer now (none: the row goes)."""
        if not hold_ids:
            await self.conn.execute("DELETE FROM legal_holds WHERE customer_number = $1", customer_number)
            return
        await self.conn.execute(
            """
            INSERT INTO legal_holds (customer_number, holds_billing, hold_ids) VALUES ($1, $2, $3)
            ON CONFLICT (customer_number) DO UPDATE
               SET holds_billing = EXCLUDED.holds_billing, hold_ids = EXCLUDED.hold_ids, updated_at = now()
            """,
            customer_number,
            holds_billing,
            hold_ids,
        )

    async def schedule_deletions(
        self, customer_number: str, request_id: str, rows: list[tuple[str, date, str]]
    ) -> None:
        """(item_id, last day kept, legal basis): deleted by ``purge_due`` once that day has passed."""
        await self.conn.executemany(
            """
            INSERT INTO scheduled_deletions (item_id, customer_number, delete_after, legal_basis, request_id)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (item_id) DO UPDATE
               SET delete_after = EXCLUDED.delete_after, legal_basis = EXCLUDED.legal_basis
            """,
            [(item_id, customer_number, until, basis, request_id) for item_id, until, basis in rows],
        )

    async def due_deletions(self, today: date) -> list[tuple[str, str]]:
        """(customer_number, item_id) of kept items whose last day is before ``today``."""
        rows = await self.conn.fetch(
            "SELECT customer_number, item_id FROM scheduled_deletions WHERE delete_after < $1"
            " ORDER BY customer_number, item_id FOR UPDATE",
            today,
        )
        return [(r["customer_number"], r["item_id"]) for r in rows]

    async def held_customers(self, customer_numbers: list[str]) -> set[str]:
        """Those of ``customer_numbers`` a standing legal hold covers for billing."""
        rows = await self.conn.fetch(
            "SELECT customer_number FROM legal_holds WHERE customer_number = ANY($1::text[]) AND holds_billing",
            customer_numbers,
        )
        return {r["customer_number"] for r in rows}

    async def is_empty_erased(self, customer_number: str) -> bool:
        """An erased customer whose last kept item is gone: nothing remains to keep a key for."""
        empty: bool = await self.conn.fetchval(
            """
            SELECT c.erased_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM items i WHERE i.customer_number = c.customer_number)
              FROM customers c WHERE c.customer_number = $1
            """,
            customer_number,
        )
        return bool(empty)


def encode(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
