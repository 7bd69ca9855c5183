"""The billing store's read route for the staff service (``lampo.store_read``): a customer's
invoices, payments, collection cases and credit checks, category ``billing``.

An item: ``{"kind", "item_id", "invoice_number", "occurred_at", "data", "origin", "legal_basis",
"restricted", "kept_until"}`` (``data``: the item's decrypted content). A normal read leaves out
the items a statute keeps after an erasure (restricted); ``purpose=legal_claims`` shows them,
marked, and a restricted customer's items.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from fastapi import FastAPI

from lampo.billing.domain import PROVENANCE
from lampo.billing.handlers import decode
from lampo.billing.store import BillingStore
from lampo.contracts.categories import Category
from lampo.service import Runtime
from lampo.store_read import Held, Scope, store_read_api

CATEGORY = Category.BILLING.value


async def read(conn: asyncpg.Connection, runtime: Runtime, customer_number: str, scope: Scope) -> Held | None:
    store = BillingStore(conn, runtime.keys)
    known, restricted_at = await store.restricted_at(customer_number)
    if not known:
        return None
    items: list[dict[str, Any]] = []
    cipher = await store.cipher(customer_number) if scope != "status" else None
    if cipher is not None:
        for item in decode(cipher, await store.all_items(customer_number)):
            stored = item.stored
            if stored.restricted_reason is not None and scope != "legal_claims":
                continue
            origin, basis = PROVENANCE[stored.kind]
            items.append(
                {
                    "kind": stored.kind,
                    "item_id": stored.item_id,
                    "invoice_number": stored.invoice_number,
                    "occurred_at": stored.occurred_at,
                    "data": item.data,
                    "origin": origin,
                    "legal_basis": basis,
                    "restricted": stored.restricted_reason,
                    "kept_until": stored.delete_after,
                }
            )
    return Held(restricted_at is not None, {CATEGORY: items})


def customers_api(runtime: Runtime | Callable[[], Runtime]) -> FastAPI:
    return store_read_api("billing", runtime, read).api
