"""The registry as a participant: access, erasure (with a scan of every table afterwards),
rectification and restriction, over privacy.tasks.v1 / privacy.acks.v1 on the real broker."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

from lampo.contracts.catalog import CONSENT_EVENTS, PRIVACY_TASKS, REGISTRY_EVENTS, REGISTRY_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.crypto import new_request_keypair, unseal
from lampo.db.pool import server_url_of
from lampo.registry.store import RegistryStore
from lampo.testing import PG_URL, Producer, TopicReader, customer_upserted, eventually, synthetic_identity_code

from .helpers import (
    contact_person_upserted,
    event,
    new_customer_number,
    now,
    organisation_upserted,
    ours,
    run_task,
    subject_in,
    task_for,
)


async def populate(registry: Any, n: int) -> tuple[str, str, str]:
    """A person with every category held, and an organisation they are the contact person of."""
    person, organisation = new_customer_number(), new_customer_number()
    point = f"MUL-{n:06d}"
    async with TopicReader(REGISTRY_EVENTS) as notices, Producer() as producer:
        await producer.send(REGISTRY_INBOUND, organisation, organisation_upserted(organisation, "7654321-2"))
        await producer.send(REGISTRY_INBOUND, person, contact_person_upserted(person, organisation, n))
        for kind, data in [
            (
                "contract.updated",
                {
                    "contract_id": f"C-{n}",
                    "product": "kaukolampo",
                    "status": "active",
                    "valid_from": "2024-01-01",
                    "metering_point": point,
                },
            ),
            (
                "consumption.reported",
                {
                    "metering_point": point,
                    "period_start": "2025-01-01",
                    "period_end": "2025-01-31",
                    "energy_mwh": "2.5",
                },
            ),
            (
                "interaction.logged",
                {
                    "interaction_id": f"I-{n}",
                    "channel": "email",
                    "at": now().isoformat(),
                    "summary": f"Testi{n} Asiakas{n} asiakas{n}@example.fi muutti osoitetta",
                },
            ),
        ]:
            await producer.send(REGISTRY_INBOUND, person, event(kind, {"customer_number": person, **data}))
        await producer.send(
            CONSENT_EVENTS,
            person,
            event(
                "consent.changed",
                {
                    "customer_number": person,
                    "purpose": "profiling",
                    "state": "granted",
                    "effective_at": now().isoformat(),
                },
                source="urn:lampo:consent",
            ),
        )
        await ours(registry, notices, person, count=4)
    subject_id = await subject_in(registry, person)

    async def profiled() -> bool:
        async with registry.runtime.pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT count(*) FROM profiles WHERE customer_number = $1", person))

    await eventually(profiled, timeout=60)
    return person, organisation, subject_id


async def test_access_returns_everything_held_per_category_with_provenance_sealed_to_the_request(registry) -> None:
    person, _, subject_id = await populate(registry, 41)
    private_key, public_key = new_request_keypair()
    ack = await run_task(registry, subject_id, [person], "access", result_key=public_key)

    assert ack.status == "done" and ack.result is not None
    assert "Asiakas41" not in ack.result  # sealed: only the request's key opens it
    result = json.loads(unseal(private_key, ack.result))
    assert set(result) == {"basic", "contact_person", "contact", "customer_relationship", "services", "consumption"}
    person_section = next(i for i in result["basic"] if i.get("section") == "person")
    assert person_section["data"]["personal_identity_code"] == synthetic_identity_code(41)
    assert {i["data"]["email"] for i in result["contact"]} == {"asiakas41@example.fi"}
    assert {i["kind"] for i in result["customer_relationship"]} == {"contract", "interaction"}
    assert (
        "muutti osoitetta"
        in next(i for i in result["customer_relationship"] if i["kind"] == "interaction")["data"]["summary"]
    )
    assert result["consumption"][0]["data"]["energy_mwh"] == "2.5"
    assert result["services"][0]["kind"] == "profile"
    for items in result.values():
        for item in items:
            assert {"customer_number", "data", "source_system", "origin", "legal_basis", "updated_at"} <= set(item)


async def scan_database(registry: Any, needles: list[str]) -> list[tuple[str, str]]:
    """Every row of every table of the registry's database, as text, searched for each value in
    clear and hex-encoded (bytea columns print as hex)."""
    found = []
    async with registry.runtime.pool.acquire() as conn:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
        assert {"outbox", "inbox", "sections", "lookup", "subject_keys", "privacy_tasks"} <= {
            t["table_name"] for t in tables
        }
        for t in tables:
            rows = await conn.fetch(f'SELECT t::text AS row FROM "{t["table_name"]}" t')
            for r in rows:
                text = r["row"].lower()
                for needle in needles:
                    if needle.lower() in text or needle.encode().hex() in text:
                        found.append((t["table_name"], needle))
    return found


async def test_erasure_deletes_everything_destroys_the_key_and_leaves_no_trace_in_any_table(registry) -> None:
    n = 42
    person, organisation, subject_id = await populate(registry, n)
    needles = [
        synthetic_identity_code(n),
        f"Testi{n}",
        f"Asiakas{n}",
        f"asiakas{n}@example.fi",
        f"+35840{n:07d}",
        f"Testikatu {n + 1}",
    ]
    async with registry.runtime.pool.acquire() as conn:
        # the values are held, encrypted: readable with the subject's key before the erasure
        row = await conn.fetchrow(
            "SELECT payload FROM sections WHERE customer_number = $1 AND section = 'contact'", person
        )
        cipher = await registry.runtime.keys.cipher(conn, subject_id)
        assert f"asiakas{n}@example.fi" in (cipher.decrypt("contact", bytes(row["payload"])) or "")
        digests = [
            registry.runtime.keys.blind_index("personal_identity_code", synthetic_identity_code(n)).hex(),
            registry.runtime.keys.blind_index("email", f"asiakas{n}@example.fi").hex(),
        ]

    async with TopicReader(REGISTRY_EVENTS) as notices:
        ack = await run_task(registry, subject_id, [person], "erasure")
        [erased] = await notices.wait_for(
            lambda r: (
                json.loads(r.value)["type"] == "subject.erased"
                and json.loads(r.value)["data"]["subject_id"] == subject_id
            )
        )

    assert ack.status == "done"
    assert ack.erased == {
        "basic": 3,
        "contact": 1,
        "contact_person": 1,
        "customer_relationship": 2,
        "services": 1,
        "consumption": 1,
    }
    body = json.loads(erased.value)
    assert body["data"]["request_id"] == ack.request_id and body["data"]["customer_number"] == person
    assert erased.key.decode() == subject_id and "example.fi" not in erased.value.decode()
    # The erasure notice and the ack (pseudonymous ids only) sit in the outbox until the relay has sent them
    # and deleted the row, which may be a moment after it reached the topic: wait for that.
    async with registry.runtime.pool.acquire() as conn:
        await eventually(lambda: conn.fetchval("SELECT count(*) = 0 FROM outbox"))
    assert await scan_database(registry, [*needles, *digests, subject_id, person]) == []
    async with registry.runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM subject_keys WHERE subject_id = $1", subject_id) == 0
        assert await conn.fetchval("SELECT count(*) FROM customers WHERE customer_number = $1", organisation) == 1


async def test_erasure_of_some_categories_keeps_the_others_and_the_key(registry) -> None:
    person, _, subject_id = await populate(registry, 43)
    ack = await run_task(registry, subject_id, [person], "erasure", categories=["consumption", "services"])
    assert ack.erased == {"consumption": 1, "services": 1}
    async with registry.runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM subject_keys WHERE subject_id = $1", subject_id) == 1
        assert await conn.fetchval("SELECT count(*) FROM consumption WHERE subject_id = $1", subject_id) == 0
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM sections WHERE subject_id = $1 AND payload IS NOT NULL", subject_id
            )
            == 5
        )


async def test_rectification_applies_corrections_and_announces_the_change(registry) -> None:
    person, _, subject_id = await populate(registry, 44)
    async with TopicReader(REGISTRY_EVENTS) as notices:
        ack = await run_task(
            registry,
            subject_id,
            [person],
            "rectification",
            corrections={"contact": {"email": "oikaistu44@example.fi"}, "person": {"last_name": "Oikaistu"}},
        )
        assert ack.status == "done", ack.error
        [notice] = await ours(registry, notices, person, type="subject.changed")
    assert sorted(json.loads(notice.value)["data"]["categories"]) == ["basic", "contact"]
    async with registry.runtime.pool.acquire() as conn:
        cipher = await registry.runtime.keys.cipher(conn, subject_id)
        rows = {r["section"]: r for r in await conn.fetch("SELECT * FROM sections WHERE customer_number = $1", person)}
    contact = json.loads(cipher.decrypt("contact", bytes(rows["contact"]["payload"])) or "{}")
    named = json.loads(cipher.decrypt("person", bytes(rows["person"]["payload"])) or "{}")
    assert contact["email"] == "oikaistu44@example.fi" and contact["street"] == "Testikatu 45"  # other fields stay
    assert named["last_name"] == "Oikaistu" and named["personal_identity_code"] == synthetic_identity_code(44)
    assert rows["contact"]["source_system"] == "dsar" and rows["contact"]["origin"] == "subject"


async def test_restriction_marks_the_subject_and_stops_profiling(registry) -> None:
    person, _, subject_id = await populate(registry, 45)
    ack = await run_task(registry, subject_id, [person], "restriction")
    assert ack.status == "done"
    async with registry.runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT restricted FROM subjects WHERE subject_id = $1", subject_id) is True
        assert await conn.fetchval("SELECT count(*) FROM profiles WHERE subject_id = $1", subject_id) == 0
    # still held, and still answered for DSARs
    private_key, public_key = new_request_keypair()
    access = await run_task(registry, subject_id, [person], "access", result_key=public_key)
    assert json.loads(unseal(private_key, access.result or ""))["consumption"]


async def test_erasure_counts_only_what_was_held(registry) -> None:
    person = new_customer_number()
    async with TopicReader(REGISTRY_EVENTS) as notices, Producer() as producer:
        await producer.send(REGISTRY_INBOUND, person, customer_upserted(person, 46))
        await ours(registry, notices, person)
    subject_id = await subject_in(registry, person)
    first = await run_task(registry, subject_id, [person], "erasure")
    assert first.erased == {"basic": 3, "contact": 1}


async def test_an_erasure_and_a_consent_change_of_one_customer_wait_in_line_instead_of_deadlocking(registry) -> None:
    """The erasure's own consent.changed (the consent store erases the consent) reaches the registry
    while the registry erases: the consent consumer locks the customer, writes profiling_consent,
    then deletes the profile; the erasure deletes the profile, then profiling_consent. Unless the
    erasure takes the customer's lock first, each holds a row the other wants and PostgreSQL
    aborts one after a second (12 deadlocks in a 30 s run at 20 erasures/s). Here the consent
    side is held open mid-way: the erasure must wait on the customer's lock, having touched
    nothing, and finish once the consent transaction commits."""
    person, _, subject_id = await populate(registry, 47)
    store_url = server_url_of(PG_URL, registry.settings.database or "")
    consent_side = await asyncpg.connect(store_url)
    try:
        transaction = consent_side.transaction()
        await transaction.start()
        store = RegistryStore(consent_side, registry.runtime.keys)
        await store.lock_customers([person])  # as make_consent_handler does
        await store.set_consents([(person, "profiling", "withdrawn", now())])
        erasure = asyncio.create_task(run_task(registry, subject_id, [person], "erasure"))

        async def erasure_waits() -> str | None:
            return await consent_side.fetchval(
                "SELECT l.locktype FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                " WHERE NOT l.granted AND a.datname = current_database() AND l.pid <> pg_backend_pid()"
            )

        assert await eventually(erasure_waits, timeout=30) == "advisory"  # on the customer, not on a row
        assert await store.delete_profiles(customer_number=person) == 1  # no row of it is locked
        await transaction.commit()
        ack = await asyncio.wait_for(erasure, timeout=60)
        assert ack.status == "done"
        assert await consent_side.fetchval("SELECT count(*) FROM customers WHERE customer_number = $1", person) == 0
        deadlocks = await consent_side.fetchval(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        )
        assert deadlocks == 0
    finally:
        await consent_side.close()


async def test_a_batch_of_erasures_locks_its_customers_in_one_order_before_the_first_task(registry) -> None:
    """The tasks of a batch run in one transaction: locking each task's customers as it runs
    locks them in task order, and a consent batch locking the same customers sorted waited for
    it in a cycle (PostgreSQL aborted one after a second). Two erasures in one batch, the larger
    customer number first, while the consent side holds the smaller: the batch must wait on the
    smaller one holding nothing, so the larger is still free."""
    first, _, first_subject = await populate(registry, 48)
    second, _, second_subject = await populate(registry, 49)
    (small, small_subject), (large, large_subject) = sorted([(first, first_subject), (second, second_subject)])
    tasks = [task_for(large_subject, [large], "erasure"), task_for(small_subject, [small], "erasure")]
    consent_side = await asyncpg.connect(server_url_of(PG_URL, registry.settings.database or ""))
    try:
        transaction = consent_side.transaction()
        await transaction.start()
        await RegistryStore(consent_side, registry.runtime.keys).lock_customers([small])
        async with Producer() as producer:  # one produce request: one fetch, one batch
            key = tasks[0].request_id
            await producer.send_many(
                PRIVACY_TASKS,
                [(key, CloudEvent.new("privacy.task", "urn:lampo:dsar", t).to_bytes()) for t in tasks],
                signer="coordinator",
            )

        async def batch_waits() -> str | None:
            return await consent_side.fetchval(
                "SELECT l.locktype FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                " WHERE NOT l.granted AND a.datname = current_database() AND l.pid <> pg_backend_pid()"
            )

        assert await eventually(batch_waits, timeout=30) == "advisory"
        assert await consent_side.fetchval("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 7201))", large)
        await transaction.commit()

        async def both_answered() -> bool:
            ids = [t.task_id for t in tasks]
            return await consent_side.fetchval("SELECT count(*) FROM privacy_tasks WHERE task_id = ANY($1)", ids) == 2

        await eventually(both_answered, timeout=60)
        assert (
            await consent_side.fetchval(
                "SELECT count(*) FROM customers WHERE customer_number = ANY($1)", [small, large]
            )
            == 0
        )
    finally:
        await consent_side.close()
