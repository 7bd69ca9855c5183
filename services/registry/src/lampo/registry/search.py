"""The staff look-up of customers through the blind indexes, and the backfill of the name look-ups.

``POST /v1/search`` (the ``staff`` caller): body ``{"by": "customer_number" | "identity_code" |
"email" | "name", "value": "..."}``. The value travels in the body only (never in a URL, never
logged) and is looked up through the keyed hash of the ``lookup`` table: the register is never
decrypted to search. ``name`` is an exact match of the normalised name (case-folded, whitespace
collapsed; a person's "first names last name" or "last name first names", an organisation's
name).

- 200 ``{"customer_numbers": [...]}``: every customer number the value leads to, in order (none:
  an empty list); nothing else about them.
- 422 ``{"error": "invalid_by" | "invalid_value" | "invalid_identity_code" | "invalid_email" |
  "invalid_customer_number" | "invalid_json", "field": "by" | "value" | null}``: the field is
  named, never the value.
- 401 without a valid credential, 403 for another caller.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

import asyncpg

from lampo.clock import Clock
from lampo.contracts.identifiers import check_email, check_personal_identity_code
from lampo.crypto import KeyRing
from lampo.registry.domain import NAME_LOOKUPS, name_lookups, normalise_name
from lampo.registry.store import RegistryStore
from lampo.resolve_api import customer_number

log = logging.getLogger("lampo.registry")

SEARCH_BY: Final = ("customer_number", "identity_code", "email", "name")
MAX_VALUE = 320
BACKFILL_PAGE = 500


class InvalidSearch(ValueError):
    def __init__(self, error: str, field: str | None) -> None:
        super().__init__(error)
        self.error = error
        self.field = field


def parse_search(body: bytes) -> tuple[str, str]:
    """(by, value) of a search body, the value checked and normalised; InvalidSearch names the field."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidSearch("invalid_json", None) from None
    if not isinstance(obj, dict):
        raise InvalidSearch("invalid_json", None)
    by, value = obj.get("by"), obj.get("value")
    if by not in SEARCH_BY:
        raise InvalidSearch("invalid_by", "by")
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_VALUE:
        raise InvalidSearch("invalid_value", "value")
    value = value.strip()
    try:
        if by == "customer_number":
            return by, customer_number(value)
        if by == "identity_code":
            return by, check_personal_identity_code(value.upper())
        if by == "email":
            return by, check_email(value)
    except ValueError:
        raise InvalidSearch(f"invalid_{by}", "value") from None
    return by, normalise_name(value)


async def search(conn: asyncpg.Connection, keys: KeyRing, by: str, value: str) -> list[str]:
    """The customer numbers ``value`` (checked by :func:`parse_search`) leads to."""
    store = RegistryStore(conn, keys)
    if by == "customer_number":
        return [value] if await store.customer_exists(value) else []
    kinds = {"identity_code": ("personal_identity_code",), "email": ("email",), "name": NAME_LOOKUPS}[by]
    return await store.customers_by_digests([(kind, store.blind_index(kind, value)) for kind in kinds])


async def backfill_names(pool: asyncpg.Pool, keys: KeyRing, clock: Clock, page: int = BACKFILL_PAGE) -> int:
    """Write the name look-ups of the sections stored before migration 0006, a page per
    transaction; then mark the backfill done (later runs return at once). Returns the look-ups
    written. Safe beside ingest and erasure: a section is locked while its look-up is written,
    and a look-up an upsert already wrote is kept."""
    async with pool.acquire() as conn:
        if not await RegistryStore(conn, keys).backfill_pending("name"):
            return 0
    written, after = 0, ""
    while True:
        async with pool.acquire() as conn, conn.transaction():
            store = RegistryStore(conn, keys)
            rows = await store.unindexed_names(after, page)
            if not rows:
                await store.backfill_done("name", clock.now())
                break
            if len(rows) == page and rows[0]["customer_number"] != rows[-1]["customer_number"]:
                # The last customer's other section may be on the next page: theirs all come then.
                rows = [r for r in rows if r["customer_number"] != rows[-1]["customer_number"]]
            after = rows[-1]["customer_number"]
            ciphers = await store.ciphers({r["subject_id"] for r in rows}, create=False)
            lookups: list[tuple[str, bytes, str, str]] = []
            for r in rows:
                cipher = ciphers.get(r["subject_id"])
                if cipher is None:  # the key is gone: nothing to index
                    continue
                text = cipher.decrypt(r["section"], bytes(r["payload"]))
                payload: Any = json.loads(text) if isinstance(text, str) else None
                for kind, name in name_lookups(r["section"], payload).items():
                    if name:
                        lookups.append((kind, store.blind_index(kind, name), r["customer_number"], r["subject_id"]))
            await store.add_lookups(lookups)
            written += len(lookups)
    if written:
        log.info("registry: name look-ups backfilled: %d", written)  # a count only
    return written
