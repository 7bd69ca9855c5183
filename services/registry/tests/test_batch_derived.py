"""The inbound handler on a batch, straight on the database: customers created in the batch and
customers already stored keep their derived rows (metering points, organisation links, blind
indexes) exactly in step with their sections, and a section cleared before it ever held data is
no change to announce."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from opentelemetry.trace import INVALID_SPAN, format_span_id, format_trace_id

from lampo.clock import SystemClock
from lampo.contracts.catalog import REGISTRY_INBOUND, parse
from lampo.crypto import KeyRing, new_master_key, parse_master_key
from lampo.db import MigrationSource, create_pool, ensure_database, migrate, platform_migrations
from lampo.db.pool import server_url_of
from lampo.messaging.consumer import Incoming
from lampo.registry.app import MIGRATIONS
from lampo.registry.handlers import make_inbound_handler
from lampo.testing import PG_URL, customer_upserted, drop_database, unique

from .helpers import contact_person_upserted, new_customer_number, organisation_upserted, with_data


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    name = unique("test_registry_batch")
    url = server_url_of(PG_URL, name)
    await ensure_database(url)
    pool = await create_pool(url)
    await migrate(pool, [platform_migrations(), MigrationSource("registry", MIGRATIONS)])
    yield pool
    await pool.close()
    await drop_database(name)


def incoming(raw: bytes) -> Incoming:
    ctx = INVALID_SPAN.get_span_context()
    traceparent = f"00-{format_trace_id(ctx.trace_id)}-{format_span_id(ctx.span_id)}-01"
    record: Any = None  # the handler reads the parsed event only
    return Incoming(record, parse(REGISTRY_INBOUND, raw), INVALID_SPAN, traceparent)


async def apply(pool: asyncpg.Pool, keys: KeyRing, raws: list[bytes]) -> dict[str, list[str]]:
    """Apply one batch; returns the categories announced per customer number."""
    handler = make_inbound_handler(keys, SystemClock())
    async with pool.acquire() as conn, conn.transaction():
        await handler(conn, [incoming(raw) for raw in raws])
        rows = await conn.fetch("SELECT value FROM outbox ORDER BY id")
        await conn.execute("DELETE FROM outbox")
    notices = [json.loads(r["value"])["data"] for r in rows]
    return {n["customer_number"]: sorted(n["categories"]) for n in notices}


async def test_derived_rows_follow_sections_for_new_and_stored_customers(pool) -> None:
    keys = KeyRing(parse_master_key(new_master_key()))
    organisation, person, contact = new_customer_number(), new_customer_number(), new_customer_number()
    first_person = with_data(customer_upserted(person, 41), metering_points=["MUL-000041"], contact=None)

    # One batch creates all three: the contact person's organisation is created earlier in it.
    announced = await apply(
        pool,
        keys,
        [
            organisation_upserted(organisation).to_bytes(),
            first_person,
            contact_person_upserted(contact, organisation, 42).to_bytes(),
        ],
    )
    # person: contact sent as null before it ever held anything, so only basic changed.
    assert announced == {
        organisation: ["basic", "contact"],
        person: ["basic"],
        contact: ["basic", "contact", "contact_person"],
    }
    async with pool.acquire() as conn:
        points = await conn.fetch("SELECT customer_number, metering_point FROM metering_points ORDER BY 1, 2")
        links = await conn.fetch("SELECT customer_number, organisation_number FROM contact_links")
        lookups = await conn.fetch("SELECT kind, customer_number FROM lookup ORDER BY 1, 2")
    assert {(r["customer_number"], r["metering_point"]) for r in points} == {
        (person, "MUL-000041"),
        (contact, "MUL-000042"),
    }
    assert [(r["customer_number"], r["organisation_number"]) for r in links] == [(contact, organisation)]
    assert {(r["kind"], r["customer_number"]) for r in lookups} == {
        ("business_id", organisation),
        ("personal_identity_code", person),
        ("personal_identity_code", contact),
        ("email", contact),
        # the staff look-up by name (migration 0006)
        ("organisation_name", organisation),
        ("person_name", person),
        ("person_name_last_first", person),
        ("person_name", contact),
        ("person_name_last_first", contact),
    }

    # The next batch replaces what the stored customers hold: another metering point, the link
    # cleared, the contact now filled in.
    second_person = with_data(customer_upserted(person, 41), metering_points=["MUL-000043"])
    unlinked = with_data(contact_person_upserted(contact, organisation, 42), contact_person_for=None)
    announced = await apply(pool, keys, [second_person, unlinked])
    assert announced == {person: ["basic", "contact"], contact: ["basic", "contact", "contact_person"]}
    async with pool.acquire() as conn:
        points = await conn.fetch("SELECT customer_number, metering_point FROM metering_points ORDER BY 1, 2")
        links = await conn.fetch("SELECT customer_number FROM contact_links")
        emails = await conn.fetch("SELECT customer_number FROM lookup WHERE kind = 'email'")
    assert {(r["customer_number"], r["metering_point"]) for r in points} == {
        (person, "MUL-000043"),
        (contact, "MUL-000042"),
    }
    assert links == []
    assert {r["customer_number"] for r in emails} == {person, contact}
