"""Every registry.inbound.v1 type on the real broker and database, its provenance, and every
bad input dead-lettered with its own reason while the consumer goes on."""

from __future__ import annotations

import json
from datetime import timedelta

from lampo.contracts.catalog import REGISTRY_EVENTS, REGISTRY_INBOUND
from lampo.messaging.topics import dlq
from lampo.testing import Producer, TopicReader, customer_upserted, header

from .helpers import (
    contact_person_upserted,
    dead_letters,
    event,
    new_customer_number,
    now,
    organisation_upserted,
    ours,
    subject_in,
    with_data,
)


async def test_every_inbound_type_is_stored_with_provenance_and_announced(registry) -> None:
    organisation, person = new_customer_number(), new_customer_number()
    point = "MUL-000031"
    t = now()
    inbound = [
        (organisation, organisation_upserted(organisation, "1234567-1")),
        (person, contact_person_upserted(person, organisation, 31)),
        (
            person,
            event(
                "contract.updated",
                {
                    "customer_number": person,
                    "contract_id": "C-31",
                    "product": "kaukolampo",
                    "status": "active",
                    "valid_from": "2024-01-01",
                    "metering_point": point,
                },
                source="urn:system:contracts",
            ),
        ),
        (
            person,
            event(
                "consumption.reported",
                {
                    "customer_number": person,
                    "metering_point": point,
                    "period_start": "2025-01-01",
                    "period_end": "2025-01-31",
                    "energy_mwh": "2.150",
                    "annual_forecast_mwh": "14.0",
                },
                source="urn:system:metering",
            ),
        ),
        (
            person,
            event(
                "interaction.logged",
                {
                    "customer_number": person,
                    "interaction_id": "I-31",
                    "channel": "phone",
                    "at": t.isoformat(),
                    "summary": "Asiakas Asiakas31 kysyi laskusta",
                },
            ),
        ),
        (person, event("customer.relationship_ended", {"customer_number": person, "ended_at": t.isoformat()})),
    ]
    async with TopicReader(REGISTRY_EVENTS) as notices, Producer() as producer:
        for key, value in inbound:
            await producer.send(REGISTRY_INBOUND, key, value)
        person_notices = await ours(registry, notices, person, count=5)
        await ours(registry, notices, organisation)

    categories = [json.loads(r.value)["data"]["categories"] for r in person_notices]
    assert categories == [
        ["basic", "contact", "contact_person"],
        ["customer_relationship"],
        ["consumption"],
        ["customer_relationship"],
        ["customer_relationship"],
    ]
    subject_id = await subject_in(registry, person)
    async with registry.runtime.pool.acquire() as conn:
        link = await conn.fetchval("SELECT organisation_number FROM contact_links WHERE customer_number = $1", person)
        summary = await conn.fetchval("SELECT summary FROM interactions WHERE customer_number = $1", person)
        counts = {
            t: await conn.fetchval(f"SELECT count(*) FROM {t} WHERE subject_id = $1", subject_id)
            for t in ("contracts", "consumption", "interactions", "relationship_ends")
        }
        provenance = await conn.fetch(
            "SELECT category, source_system, origin, legal_basis, last_changed FROM provenance WHERE subject_id = $1"
            " ORDER BY category, source_system",
            subject_id,
        )
    assert link == organisation  # the contact person is linked to the organisation
    assert b"Asiakas31" not in bytes(summary)  # the free-text summary is encrypted
    assert counts == {"contracts": 1, "consumption": 1, "interactions": 1, "relationship_ends": 1}
    got = {(r["category"], r["source_system"], r["origin"], r["legal_basis"]) for r in provenance}
    assert got == {
        ("basic", "crm", "subject", "contract"),
        ("contact", "crm", "subject", "contract"),
        ("contact_person", "crm", "subject", "contract"),
        ("consumption", "metering", "third_party", "contract"),
        ("customer_relationship", "contracts", "subject", "contract"),
        ("customer_relationship", "crm", "subject", "contract"),
        ("customer_relationship", "crm", "subject", "legal_obligation"),
    }
    assert all(r["last_changed"] is not None for r in provenance)


async def test_older_events_and_cleared_sections_do_not_corrupt_state(registry) -> None:
    customer = new_customer_number()
    t = now()
    contract = {"customer_number": customer, "contract_id": "C-1", "product": "kaukolampo", "valid_from": "2024-01-01"}
    first = customer_upserted(customer, 32, time=t - timedelta(hours=2))
    cleared = event(
        "customer.upserted",
        {
            "customer_number": customer,
            "kind": "person",
            "contact": None,
            "source": {"system": "crm", "origin": "subject"},
            "legal_basis": "contract",
        },
        time=t,
    )
    late = customer_upserted(customer, 32, email="late@example.fi", time=t - timedelta(hours=1))
    async with TopicReader(REGISTRY_EVENTS) as notices, Producer() as producer:
        await producer.send(REGISTRY_INBOUND, customer, first)
        await producer.send(REGISTRY_INBOUND, customer, cleared)
        await producer.send(REGISTRY_INBOUND, customer, late)  # older than the clearing: contact stays cleared
        await producer.send(
            REGISTRY_INBOUND, customer, event("contract.updated", {**contract, "status": "ended"}, time=t)
        )
        await producer.send(
            REGISTRY_INBOUND,
            customer,
            event("contract.updated", {**contract, "status": "active"}, time=t - timedelta(days=1)),
        )
        await ours(registry, notices, customer, count=4)
        await notices.quiet(1.0)
    async with registry.runtime.pool.acquire() as conn:
        contact = await conn.fetchrow(
            "SELECT payload, event_time FROM sections WHERE customer_number = $1 AND section = 'contact'", customer
        )
        email = await conn.fetchval(
            "SELECT count(*) FROM lookup WHERE customer_number = $1 AND kind = 'email'", customer
        )
        status = await conn.fetchval("SELECT status FROM contracts WHERE customer_number = $1", customer)
    assert contact["payload"] is None and contact["event_time"] == t  # cleared, and the tombstone kept its time
    assert email == 0
    assert status == "ended"


async def test_each_bad_input_is_dead_lettered_with_its_reason_and_the_consumer_goes_on(registry) -> None:
    customer, organisation, stranger = new_customer_number(), new_customer_number(), new_customer_number()
    good = customer_upserted(customer, 33)
    bad = [
        (
            organisation,
            with_data(organisation_upserted(organisation, "1234567-1"), **{"organisation.business_id": "1234567-2"}),
            "invalid_business_id",
        ),
        (customer, with_data(good, **{"contact.postal_code": "4095"}), "invalid_postal_code"),
        (customer, with_data(good, **{"contact.phone": "+35812"}), "invalid_phone"),
        (customer, with_data(good, **{"contact.email": "maija.example.fi"}), "invalid_email"),
        (customer, contact_person_upserted(customer, stranger, 33).to_bytes(), "unknown_organisation"),
        (
            customer,
            event(
                "consumption.reported",
                {
                    "customer_number": customer,
                    "metering_point": "MUL-999999",
                    "period_start": "2025-01-01",
                    "period_end": "2025-01-31",
                    "energy_mwh": "1.0",
                },
            ).to_bytes(),
            "unknown_metering_point",
        ),
        (
            stranger,
            event(
                "customer.relationship_ended", {"customer_number": stranger, "ended_at": now().isoformat()}
            ).to_bytes(),
            "unknown_customer",
        ),
    ]
    keys = {k.encode() for k, _, _ in bad}
    async with (
        TopicReader(dlq(REGISTRY_INBOUND)) as dead,
        TopicReader(REGISTRY_EVENTS) as notices,
        Producer() as producer,
    ):
        await producer.send(REGISTRY_INBOUND, customer, good)
        for key, value, _ in bad:
            await producer.send(REGISTRY_INBOUND, key, value)
        after = customer_upserted(customer, 33, email="after@example.fi")
        await producer.send(REGISTRY_INBOUND, customer, after)  # the consumer goes on
        records = await dead_letters(dead, keys, len(bad))
        await ours(registry, notices, customer, count=2)

    # (records of different keys may sit on different partitions: compared by value, not order)
    by_value = {r.value: r for r in records}  # copied unchanged
    assert {value: header(by_value[value], "error.reason") for _, value, _ in bad} == {
        value: reason for _, value, reason in bad
    }
    for record in records:
        detail = header(record, "error.detail") or ""
        assert "data." in detail and "example.fi" not in detail and "+358" not in detail
    assert all(registry.consumer.stats.dead_lettered.get(reason) == 1 for _, _, reason in bad)
