"""Ingest a batch at a time, straight on the database, with the subject keys in a database of
their own as deployed: a seeded register's batch (each customer's upsert, then its monthly
readings) ends as it would one event at a time; a batch's new subjects get one key each, made in
one keys transaction; keys made for a batch whose data transaction fails do no harm."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal

import asyncpg
import pytest

from lampo.clock import SystemClock
from lampo.crypto import KeyRing, new_master_key, parse_master_key
from lampo.db import MigrationSource, create_pool, ensure_database, keys_migrations, migrate, platform_migrations
from lampo.db.pool import server_url_of
from lampo.registry.app import MIGRATIONS
from lampo.registry.handlers import make_inbound_handler
from lampo.testing import PG_URL, customer_upserted, drop_database, unique

from .helpers import event, new_customer_number, with_data
from .test_batch_derived import incoming


async def _database(prefix: str, sources: list[MigrationSource]) -> tuple[str, asyncpg.Pool]:
    name = unique(prefix)
    url = server_url_of(PG_URL, name)
    await ensure_database(url)
    pool = await create_pool(url)
    await migrate(pool, sources)
    return name, pool


@pytest.fixture
async def pools() -> AsyncIterator[list[asyncpg.Pool]]:
    """Two registry databases (a batch applied at once, and one event at a time) and a keys database."""
    made = [
        await _database("test_registry_run", [platform_migrations(), MigrationSource("registry", MIGRATIONS)]),
        await _database("test_registry_one", [platform_migrations(), MigrationSource("registry", MIGRATIONS)]),
        await _database("test_registry_keys", [keys_migrations()]),
    ]
    yield [pool for _, pool in made]
    for name, pool in made:
        await pool.close()
        await drop_database(name)


def readings(customer: str, n: int, months: int, *, energy: str = "1.250") -> list[bytes]:
    out = []
    for m in range(months):
        start = date(2024, m + 1, 1)
        end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        data = {
            "customer_number": customer,
            "metering_point": f"MUL-{n:06d}",
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
            "energy_mwh": energy,
            "annual_forecast_mwh": "15.000",
        }
        out.append(event("consumption.reported", data, source="urn:system:metering").to_bytes())
    return out


async def apply(pool: asyncpg.Pool, keys: KeyRing, raws: list[bytes]) -> list[tuple[str, list[str]]]:
    """One batch in one data transaction; the notices it wrote, in order (customer, categories)."""
    handler = make_inbound_handler(keys, SystemClock())
    async with pool.acquire() as conn, conn.transaction():
        await handler(conn, [incoming(raw) for raw in raws])
        rows = await conn.fetch("SELECT value FROM outbox ORDER BY id")
        await conn.execute("DELETE FROM outbox")
    notices = [json.loads(r["value"])["data"] for r in rows]
    return [(n["customer_number"], sorted(n["categories"])) for n in notices]


async def state(pool: asyncpg.Pool) -> tuple[list[tuple[object, ...]], int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT customer_number, metering_point, period_start, period_end, energy_mwh, event_id"
            " FROM consumption ORDER BY 1, 2, 3"
        )
        subjects = await conn.fetchval("SELECT count(*) FROM subjects")
    return [tuple(r) for r in rows], subjects


async def keys_held(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM subject_keys")
    return count


async def test_a_seeded_batch_ends_as_one_event_at_a_time_would(pools) -> None:
    batched, single, keys_pool = pools
    customers = [new_customer_number() for _ in range(4)]
    raws: list[bytes] = []
    for n, customer in enumerate(customers, start=900):
        raws += [customer_upserted(customer, n).to_bytes(), *readings(customer, n, 6)]
    # A later correction of one reading, in the same batch.
    raws += readings(customers[0], 900, 1, energy="2.500")

    keys = KeyRing(parse_master_key(new_master_key()))
    keys.attach(keys_pool)
    notices = await apply(batched, keys, raws)
    one_keys = KeyRing(parse_master_key(new_master_key()))
    one_by_one = [notice for raw in raws for notice in await apply(single, one_keys, [raw])]

    (rows, subjects), (expected_rows, expected_subjects) = await state(batched), await state(single)
    assert [r[:5] for r in rows] == [r[:5] for r in expected_rows]
    assert [r[5] for r in rows] == [r[5] for r in expected_rows]  # the same event wrote each reading
    assert len(rows) == 4 * 6 and subjects == expected_subjects == 4
    assert next(r[4] for r in rows if r[0] == customers[0] and r[2] == date(2024, 1, 1)) == Decimal("2.5")
    # Per customer the notices one event at a time gives, in its order; the reading corrected in
    # the batch is written once (the correction), so announced once.
    for customer in customers:
        ours = [categories for c, categories in notices if c == customer]
        theirs = [categories for c, categories in one_by_one if c == customer]
        assert ours == (theirs[:-1] if customer == customers[0] else theirs)
        assert ours[0] == ["basic", "contact"] and ours[1:] == [["consumption"]] * 6
    assert await keys_held(keys_pool) == 4


async def test_a_batch_makes_one_key_per_new_subject_and_keys_of_a_failed_batch_do_no_harm(pools) -> None:
    batched, _, keys_pool = pools
    master = parse_master_key(new_master_key())
    keys = KeyRing(master)
    keys.attach(keys_pool)
    first, second, other = new_customer_number(), new_customer_number(), new_customer_number()
    # One person under two new customer numbers in one batch: one subject, one key.
    raws = [
        customer_upserted(first, 901).to_bytes(),
        with_data(customer_upserted(second, 901), **{"contact.email": "toinen@example.fi"}),
        customer_upserted(other, 902).to_bytes(),
    ]
    # The data transaction fails after the batch's keys were made: the keys stand, unused.
    handler = make_inbound_handler(keys, SystemClock())
    with pytest.raises(RuntimeError):
        async with batched.acquire() as conn, conn.transaction():
            await handler(conn, [incoming(raw) for raw in raws])
            raise RuntimeError("the data transaction fails")
    assert await keys_held(keys_pool) == 2
    assert await batched.fetchval("SELECT count(*) FROM subjects") == 0

    # The batch again (as redelivered): new subjects with keys of their own, data that opens.
    await apply(batched, keys, raws)
    assert await keys_held(keys_pool) == 4
    async with batched.acquire() as conn:
        subjects = {r["customer_number"]: r["subject_id"] for r in await conn.fetch("SELECT * FROM customers")}
        assert subjects[first] == subjects[second] != subjects[other]
        reader = KeyRing(master)  # nothing cached: the keys as stored in the keys database
        reader.attach(keys_pool)
        for row in await conn.fetch("SELECT subject_id, section, payload FROM sections WHERE payload IS NOT NULL"):
            cipher = await reader.cipher(conn, row["subject_id"])
            assert cipher.decrypt(row["section"], row["payload"]) is not None


async def test_the_databases_reading_totals_are_the_profiles_own_sums(pools) -> None:
    """RegistryStore.reading_totals (one aggregate in the database, what a profile is computed
    from) equals domain.totals_of over the same readings: three years of readings of uneven
    periods, forecasts on some, both window edges hit exactly; and None without a reading."""
    import random

    from lampo.registry.domain import profile_from, totals_of
    from lampo.registry.store import RegistryStore

    pool, _, keys_pool = pools
    keys = KeyRing(parse_master_key(new_master_key()))
    keys.attach(keys_pool)
    customers = [new_customer_number() for _ in range(3)]
    await apply(pool, keys, [customer_upserted(c, 903 + i).to_bytes() for i, c in enumerate(customers)])
    rng = random.Random(17)
    latest = date(2026, 10, 31)
    async with pool.acquire() as conn:
        subject = await conn.fetchval("SELECT subject_id FROM customers WHERE customer_number = $1", customers[0])
        rows = []
        for i in range(400):
            end = latest - timedelta(days=rng.choice([0, 365, 366, 730, 731, rng.randrange(0, 1100)]))
            forecast = Decimal(f"{rng.uniform(5, 30):.3f}") if rng.random() < 0.3 else None
            rows.append((customers[0], f"MP-{i % 7}", end - timedelta(days=rng.randrange(0, 40)), end,
                         subject, Decimal(f"{rng.uniform(0, 2):.3f}"), forecast, f"ev-{i}"))  # fmt: skip
        rows.append((customers[1], "MP-0", latest - timedelta(days=30), latest, subject, Decimal("1.5"), None, "ev-x"))
        await conn.executemany(
            "INSERT INTO consumption (customer_number, metering_point, period_start, period_end, subject_id,"
            " energy_mwh, annual_forecast_mwh, event_time, event_id, source_system, origin, legal_basis)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8, 'urn:system:metering', 'metering', 'contract')"
            " ON CONFLICT DO NOTHING",
            rows,
        )
        store = RegistryStore(conn, keys)
        for customer in customers[:2]:
            expected = totals_of(await store.readings(customer))
            assert expected is not None and await store.reading_totals(customer) == expected
            assert profile_from(expected).reports == len(await store.readings(customer))
        assert await store.reading_totals(customers[2]) is None
