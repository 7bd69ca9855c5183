"""The privacy centre's consent route across services: a customer withdraws consent to profiling
over the consent service's HTTP API (as the portal does), and the registry deletes the profile
and computes none from new readings (consent → consent.events.v1 → registry)."""

from __future__ import annotations

import asyncpg
import httpx

from lampo.contracts.catalog import REGISTRY_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.db.pool import server_url_of
from lampo.synthetic import new_customer
from lampo.testing import PG_URL, Producer, customer_upserted, eventually


async def fetchval(database: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(server_url_of(PG_URL, database))
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def reading(customer, month: int) -> CloudEvent:  # type: ignore[no-untyped-def]
    return CloudEvent.new(
        "consumption.reported",
        "urn:system:metering",
        {
            "customer_number": customer.number, "metering_point": f"MUL-{customer.n:06d}",
            "period_start": f"2026-{month:02d}-01", "period_end": f"2026-{month:02d}-28",
            "energy_mwh": f"{1 + month}.5", "annual_forecast_mwh": "18.0",
        },
    )  # fmt: skip


async def test_a_withdrawal_in_the_privacy_centre_stops_profiling(suite, require) -> None:
    require("consent", "registry")
    customer = new_customer()
    registry_db = suite["registry"].env["LAMPO_DATABASE"]
    consents = f"{suite['consent'].url}/v1/customers/{customer.number}/consents"

    async def profiles() -> object:
        return await fetchval(registry_db, "SELECT count(*) FROM profiles WHERE customer_number = $1", customer.number)

    async with Producer() as systems:
        await systems.send(REGISTRY_INBOUND, customer.number, customer_upserted(customer.number, customer.n))
        for month in (1, 2, 3):
            await systems.send(REGISTRY_INBOUND, customer.number, reading(customer, month))
    async with httpx.AsyncClient(headers=suite.as_caller("portal"), timeout=10) as portal:
        granted = await portal.post(f"{consents}/profiling/grant")
        assert granted.status_code == 200, granted.text
        await eventually(lambda: fetchval(registry_db, "SELECT count(*) = 3 FROM consumption WHERE customer_number = $1",
                                          customer.number), timeout=30)  # fmt: skip
        await eventually(lambda: _equals(profiles, 1), timeout=30)

        withdrawn = await portal.post(f"{consents}/profiling/withdraw")
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["state"] == "withdrawn"
        shown = {p["purpose"]: p for p in (await portal.get(consents)).json()["purposes"]}
        assert (shown["profiling"]["state"], shown["profiling"]["channel"]) == ("withdrawn", "portal")

    await eventually(lambda: _equals(profiles, 0), timeout=10)  # the registry deleted the profile
    async with Producer() as systems:
        await systems.send(REGISTRY_INBOUND, customer.number, reading(customer, 4))
    await eventually(
        lambda: fetchval(
            registry_db, "SELECT count(*) = 4 FROM consumption WHERE customer_number = $1", customer.number
        ),
        timeout=30,
    )
    assert await profiles() == 0  # the new reading is stored, no profile computed from it


async def _equals(read, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return await read() == expected
