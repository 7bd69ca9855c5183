"""The consent ledger's read route for the staff service (``lampo.store_read``), category
``customer_relationship``: the customer's current consent per purpose and the ledger behind it.

Items: ``{"kind": "consent", "purpose", "state", "effective_at", "scope"}`` per purpose (a
suppression entry kept after an erasure stands as ``objected``), then ``{"kind": "ledger_entry",
"event_id", "event_kind", "purpose", "scope", "channel", "at", "consent_text_version", "source",
"outcome", "state_after", "note", "recorded_at"}`` in the ledger's order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from fastapi import FastAPI

from lampo.consent.domain import CATEGORY
from lampo.consent.store import ConsentStore, known
from lampo.service import Runtime
from lampo.store_read import Held, Scope, store_read_api


async def read(conn: asyncpg.Connection, runtime: Runtime, customer_number: str, scope: Scope) -> Held | None:
    if not await known(conn, customer_number):
        return None
    store = ConsentStore(conn)
    restricted = await store.restricted_since(customer_number) is not None
    items: list[dict[str, Any]] = []
    if scope != "status":
        current = await store.current([customer_number], await store.purposes())
        for (_, purpose), c in sorted(current.items()):
            items.append(
                {
                    "kind": "consent",
                    "purpose": purpose,
                    "state": c.state,
                    "effective_at": c.effective_at,
                    "scope": c.scope,
                }
            )
        for entry in await store.ledger_of(customer_number):
            items.append({"kind": "ledger_entry", **{"event_kind" if k == "kind" else k: v for k, v in entry.items()}})
    return Held(restricted, {CATEGORY: items})


def customers_api(runtime: Runtime | Callable[[], Runtime]) -> FastAPI:
    return store_read_api("consent", runtime, read).api
