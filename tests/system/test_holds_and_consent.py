"""Promises that span services: a legal hold placed by an authority's case keeps data out of an
erasure until it is released (retention → dsar → participants); a withdrawn consent stops the
registry's profiling at once and deletes the profile (consent → registry)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import asyncpg

from lampo.contracts.catalog import CONSENT_EVENTS, CONSENT_INBOUND, DSAR_EVENTS, REGISTRY_INBOUND, RETENTION_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.db.pool import server_url_of
from lampo.synthetic import approve, new_customer, outcome, seed, submit, submitted
from lampo.testing import PG_URL, Producer, TopicReader, customer_upserted, eventually


async def fetchval(database: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(server_url_of(PG_URL, database))
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def database_of(suite, service: str) -> str:  # type: ignore[no-untyped-def]
    return suite[service].env["LAMPO_DATABASE"]


async def test_a_legal_hold_keeps_data_out_of_an_erasure_until_released(suite, require) -> None:
    require("dsar", "retention", "registry", "billing", "recordings", "consent")
    customer = new_customer()
    await seed(suite.urls, customer)
    hold_id = f"hold-{uuid.uuid4().hex[:8]}"
    placed = {
        "hold_id": hold_id, "customer_number": customer.number, "categories": [],
        "case_reference": "R 26/4711", "authority": "Keski-Suomen käräjäoikeus", "placed_at": datetime.now(UTC),
    }  # fmt: skip
    async with Producer() as case_management:
        await case_management.send(
            RETENTION_INBOUND, customer.number, CloudEvent.new("legal_hold.placed", "urn:system:cases", placed)
        )
    dsar_db = database_of(suite, "dsar")
    await eventually(
        lambda: fetchval(
            dsar_db, "SELECT jsonb_array_length(holds) > 0 FROM legal_holds WHERE customer_number = $1", customer.number
        ),
        timeout=30,
    )

    async with TopicReader(DSAR_EVENTS) as events:
        held = await submit(submitted("erasure", customer.number))
        await outcome(events, held, "dsar.awaiting_approval")
        await approve(held)
        first = (await outcome(events, held, "dsar.completed", timeout=120))["data"]
    assert first["status"] == "completed_with_retention"
    retained = [r for result in first["results"].values() for r in result["retained"]]
    assert retained and all("R 26/4711" in r["legal_basis"] for r in retained)
    assert all(not result["erased"] for result in first["results"].values())  # nothing deleted
    assert (
        await fetchval(
            database_of(suite, "registry"), "SELECT count(*) FROM customers WHERE customer_number = $1", customer.number
        )
        == 1
    )

    released = {"hold_id": hold_id, "customer_number": customer.number, "released_at": datetime.now(UTC)}
    async with Producer() as case_management:
        await case_management.send(
            RETENTION_INBOUND, customer.number, CloudEvent.new("legal_hold.released", "urn:system:cases", released)
        )
    await eventually(
        lambda: fetchval(
            dsar_db,
            "SELECT coalesce((SELECT jsonb_array_length(holds) FROM legal_holds WHERE customer_number = $1), 0) = 0",
            customer.number,
        ),
        timeout=30,
    )
    async with TopicReader(DSAR_EVENTS) as events:
        again = await submit(submitted("erasure", customer.number))
        await outcome(events, again, "dsar.awaiting_approval")
        await approve(again)
        second = (await outcome(events, again, "dsar.completed", timeout=120))["data"]
    assert second["results"]["registry"]["erased"].get("basic", 0) >= 1
    assert second["results"]["recordings"]["erased"] == {"customer_relationship": 1}
    assert not any("R 26/4711" in r["legal_basis"] for result in second["results"].values() for r in result["retained"])


async def test_withdrawing_consent_stops_profiling_and_deletes_the_profile(suite, require) -> None:
    require("consent", "registry")
    customer = new_customer()
    registry_db = database_of(suite, "registry")
    now = datetime.now(UTC)
    async with Producer() as systems, TopicReader(CONSENT_EVENTS) as consent_events:
        await systems.send(REGISTRY_INBOUND, customer.number, customer_upserted(customer.number, customer.n))
        for month in (1, 2, 3):
            await systems.send(
                REGISTRY_INBOUND,
                customer.number,
                CloudEvent.new(
                    "consumption.reported",
                    "urn:system:metering",
                    {
                        "customer_number": customer.number, "metering_point": f"MUL-{customer.n:06d}",
                        "period_start": f"2026-0{month}-01", "period_end": f"2026-0{month}-28",
                        "energy_mwh": f"{1 + month}.5", "annual_forecast_mwh": "18.0",
                    },
                ),
            )  # fmt: skip
        await systems.send(
            CONSENT_INBOUND,
            customer.number,
            CloudEvent.new(
                "consent.given",
                "urn:system:portal",
                {"customer_number": customer.number, "purpose": "profiling", "channel": "portal", "at": now},
            ),
        )
        await eventually(
            lambda: fetchval(
                registry_db, "SELECT count(*) = 1 FROM profiles WHERE customer_number = $1", customer.number
            ),
            timeout=30,
        )
        await systems.send(
            CONSENT_INBOUND,
            customer.number,
            CloudEvent.new(
                "consent.withdrawn",
                "urn:system:portal",
                {
                    "customer_number": customer.number,
                    "purpose": "profiling",
                    "channel": "portal",
                    "at": datetime.now(UTC),
                },
            ),
        )
        changes = await consent_events.wait_for(
            lambda r: (
                r.key == customer.number.encode()
                and json.loads(r.value)["data"]["purpose"] == "profiling"
                and json.loads(r.value)["data"]["state"] == "withdrawn"
            )
        )
    assert len({json.loads(c.value)["id"] for c in changes}) == 1, [json.loads(c.value) for c in changes]
    await eventually(
        lambda: fetchval(registry_db, "SELECT count(*) = 0 FROM profiles WHERE customer_number = $1", customer.number),
        timeout=10,
    )
    # and it is not computed again while the withdrawal stands
    async with Producer() as systems:
        await systems.send(
            REGISTRY_INBOUND,
            customer.number,
            CloudEvent.new(
                "consumption.reported",
                "urn:system:metering",
                {
                    "customer_number": customer.number, "metering_point": f"MUL-{customer.n:06d}",
                    "period_start": "2026-04-01", "period_end": "2026-04-30", "energy_mwh": "1.2", "annual_forecast_mwh": "18.0",
                },
            ),
        )  # fmt: skip
    await eventually(
        lambda: fetchval(
            registry_db, "SELECT count(*) = 4 FROM consumption WHERE customer_number = $1", customer.number
        ),
        timeout=30,
    )
    assert await fetchval(registry_db, "SELECT count(*) FROM profiles WHERE customer_number = $1", customer.number) == 0
