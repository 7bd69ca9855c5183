"""``POST /v1/search``: the staff look-up by customer number, identity code, e-mail or name through
the blind indexes, kept in step by upserts, rectifications and erasures, and the backfill of the
names stored before migration 0006. Real broker and database."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx

from lampo.contracts.catalog import REGISTRY_EVENTS, REGISTRY_INBOUND
from lampo.registry.search import backfill_names
from lampo.testing import Producer, TopicReader, customer_upserted, synthetic_identity_code

from .conftest import Registry
from .helpers import as_caller, event, new_customer_number, organisation_upserted, ours, run_task, subject_in


async def search(registry: Registry, by: str, value: Any, caller: str = "staff") -> httpx.Response:
    transport = httpx.ASGITransport(app=registry.runtime.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as http:
        return await http.post("/v1/search", json={"by": by, "value": value}, headers=as_caller(caller))


async def found(registry: Registry, by: str, value: str) -> list[str]:
    r = await search(registry, by, value)
    assert r.status_code == 200, r.text
    numbers: list[str] = r.json()["customer_numbers"]
    return numbers


async def upsert(registry: Registry, customer: str, body: Any) -> None:
    async with TopicReader(REGISTRY_EVENTS) as notices, Producer() as producer:
        await producer.send(REGISTRY_INBOUND, customer, body)
        await ours(registry, notices, customer)


def person(customer: str, n: int, **person: Any) -> Any:
    data = json.loads(customer_upserted(customer, n).to_bytes())["data"]
    data["person"].update(person)
    return event("customer.upserted", data)


async def test_each_field_finds_the_customer_and_nothing_else(registry: Registry) -> None:
    n = random.randrange(20_000, 36_000)
    customer, organisation = new_customer_number(), new_customer_number()
    await upsert(registry, customer, person(customer, n, first_names="Anna  Maria", last_name=f"Väisänen{n}"))
    await upsert(registry, organisation, organisation_upserted(organisation, "7654321-2"))
    assert await found(registry, "customer_number", customer) == [customer]
    assert await found(registry, "identity_code", synthetic_identity_code(n)) == [customer]
    assert await found(registry, "identity_code", synthetic_identity_code(n).lower()) == [customer]
    assert await found(registry, "email", f"  ASIAKAS{n}@Example.FI ") == [customer]
    # The name: exact, case-folded, whitespace collapsed, in either order.
    assert await found(registry, "name", f"anna maria väisänen{n}") == [customer]
    assert await found(registry, "name", f" VÄISÄNEN{n}   Anna Maria") == [customer]
    assert await found(registry, "name", f"Anna Väisänen{n}") == []  # not a partial match
    assert organisation in await found(registry, "name", "testi oy")
    assert await found(registry, "customer_number", "NO-SUCH-1") == []
    assert await found(registry, "email", "nobody@example.fi") == []
    # What the answer holds: the numbers and nothing else.
    r = await search(registry, "email", f"asiakas{n}@example.fi")
    assert r.json() == {"customer_numbers": [customer]}
    # The names are held as keyed hashes only.
    async with registry.runtime.pool.acquire() as conn:
        kinds = await conn.fetch("SELECT kind FROM lookup WHERE customer_number = $1 ORDER BY kind", customer)
        rows = await conn.fetch("SELECT t::text AS row FROM lookup t")
    assert [k["kind"] for k in kinds] == ["email", "person_name", "person_name_last_first", "personal_identity_code"]
    assert not any(f"väisänen{n}" in r["row"].casefold() for r in rows)


async def test_invalid_input_names_the_field_never_the_value(registry: Registry) -> None:
    code = synthetic_identity_code(4321)
    wrong_check = code[:-1] + ("A" if code[-1] != "A" else "B")
    for by, value, error, field in [
        ("identity_code", wrong_check, "invalid_identity_code", "value"),
        ("identity_code", "not a code", "invalid_identity_code", "value"),
        ("email", "not-an-address", "invalid_email", "value"),
        ("name", "   ", "invalid_value", "value"),
        ("name", 42, "invalid_value", "value"),
        ("name", "x" * 321, "invalid_value", "value"),
        ("phone", "+358401234567", "invalid_by", "by"),
    ]:
        r = await search(registry, by, value)
        assert r.status_code == 422, (by, r.text)
        assert r.json() == {"error": error, "field": field}
    assert (await search(registry, "name", "Testi Asiakas", caller="dsar")).status_code == 403
    transport = httpx.ASGITransport(app=registry.runtime.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as http:
        r = await http.post("/v1/search", json={"by": "name", "value": "Testi Asiakas"})
        assert r.status_code == 401
        r = await http.post("/v1/search", content=b"[1, 2]", headers=as_caller("staff"))
        assert r.status_code == 422 and r.json() == {"error": "invalid_json"}


async def test_rectification_and_erasure_keep_the_name_index_in_step(registry: Registry) -> None:
    n = random.randrange(20_000, 36_000)
    customer = new_customer_number()
    await upsert(registry, customer, person(customer, n, last_name=f"Ennen{n}"))
    subject_id = await subject_in(registry, customer)
    assert await found(registry, "name", f"Testi{n} Ennen{n}") == [customer]
    ack = await run_task(
        registry, subject_id, [customer], "rectification", corrections={"person": {"last_name": f"Jälkeen{n}"}}
    )
    assert ack.status == "done", ack.error
    assert await found(registry, "name", f"Testi{n} Ennen{n}") == []
    assert await found(registry, "name", f"Jälkeen{n} Testi{n}") == [customer]
    # A newer upsert renames again; an older one arriving late changes nothing.
    await upsert(registry, customer, person(customer, n, last_name=f"Kolmas{n}"))
    assert await found(registry, "name", f"Testi{n} Kolmas{n}") == [customer]
    ack = await run_task(registry, subject_id, [customer], "erasure", categories=["basic"])
    assert ack.status == "done", ack.error
    assert await found(registry, "name", f"Testi{n} Kolmas{n}") == []
    assert await found(registry, "identity_code", synthetic_identity_code(n)) == []
    assert await found(registry, "email", f"asiakas{n}@example.fi") == [customer]  # contact is kept
    await run_task(registry, subject_id, [customer], "erasure")
    assert await found(registry, "email", f"asiakas{n}@example.fi") == []
    assert await found(registry, "customer_number", customer) == []


async def test_the_backfill_indexes_names_stored_before_the_migration(registry: Registry) -> None:
    n = random.randrange(20_000, 36_000)
    customers = [new_customer_number() for _ in range(5)]
    for i, customer in enumerate(customers):
        await upsert(registry, customer, person(customer, n + i, last_name=f"Vanha{n}"))
    runtime = registry.runtime
    async with runtime.pool.acquire() as conn:  # as the register was before migration 0006
        await conn.execute("DELETE FROM lookup WHERE kind IN ('person_name', 'person_name_last_first')")
        await conn.execute("UPDATE lookup_backfills SET done_at = NULL")
    assert await found(registry, "name", f"Testi{n} Vanha{n}") == []
    written = await backfill_names(runtime.pool, runtime.keys, runtime.clock, page=2)  # pages end mid-register
    assert written >= 2 * len(customers)
    for i, customer in enumerate(customers):
        assert customer in await found(registry, "name", f"Testi{n + i} Vanha{n}")
        assert customer in await found(registry, "name", f"Vanha{n} Testi{n + i}")
    async with runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT done_at IS NOT NULL FROM lookup_backfills WHERE kind = 'name'")
    assert await backfill_names(runtime.pool, runtime.keys, runtime.clock) == 0  # done: not again
