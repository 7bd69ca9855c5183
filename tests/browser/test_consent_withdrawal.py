"""Must show: a customer withdraws consent, and profiling stops. In a real Chromium against the
suite as tests/suite.py launches it: the customer verifies with a one-time code from the mail the
SMTP catcher kept, sees their consent to profiling in the privacy centre, withdraws it, gets the
receipt, and the registry deletes their consumption profile and computes none from a new reading.
The privacy statement, open to everyone, is checked on the way. Every page passes axe-core."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from lampo.contracts.catalog import CONSENT_INBOUND, REGISTRY_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.db.pool import server_url_of
from lampo.synthetic import new_customer
from lampo.testing import PG_URL, Producer, customer_upserted, eventually


async def fetchval(database: str, sql: str, *args: object) -> Any:
    conn = await asyncpg.connect(server_url_of(PG_URL, database))
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def reading(customer: Any, month: int) -> CloudEvent:
    return CloudEvent.new(
        "consumption.reported",
        "urn:system:metering",
        {
            "customer_number": customer.number, "metering_point": f"MUL-{customer.n:06d}",
            "period_start": f"2026-{month:02d}-01", "period_end": f"2026-{month:02d}-28",
            "energy_mwh": f"{1 + month}.5", "annual_forecast_mwh": "18.0",
        },
    )  # fmt: skip


async def test_a_customer_withdraws_consent_and_profiling_stops(suite, page, mailbox, assert_accessible) -> None:  # type: ignore[no-untyped-def]
    missing = {"portal", "consent", "registry"} - set(suite.services)
    if missing:
        pytest.skip(f"not installed in this checkout: {', '.join(sorted(missing))}")
    portal = suite["portal"].url
    registry_db = suite["registry"].env["LAMPO_DATABASE"]
    customer = new_customer()
    address = f"kuluttaja.{customer.number}@example.fi"

    async def profiles() -> int:
        count: int = await fetchval(
            registry_db, "SELECT count(*) FROM profiles WHERE customer_number = $1", customer.number
        )
        return count

    # The customer, three readings, and consent to profiling given earlier on the company's website.
    async with Producer() as systems:
        await systems.send(
            REGISTRY_INBOUND, customer.number, customer_upserted(customer.number, customer.n, email=address)
        )
        for month in (1, 2, 3):
            await systems.send(REGISTRY_INBOUND, customer.number, reading(customer, month))
        given = {"customer_number": customer.number, "purpose": "profiling", "channel": "web", "at": datetime.now(UTC)}
        await systems.send(CONSENT_INBOUND, customer.number, CloudEvent.new("consent.given", "urn:system:web", given))
    await eventually(profiles, timeout=120)  # the registry profiles the customer

    # The privacy statement is open to everyone and says what a withdrawal does.
    await page.goto(f"{portal}/privacy-statement")
    await page.get_by_role("heading", level=1, name="Tietosuojaseloste").wait_for()
    assert "profilointi loppuu" in await page.locator("#consents ~ p").first.inner_text()
    await assert_accessible(page, context="privacy statement")

    # Consents need a verified subject: verify with the one-time code sent to the registered address.
    await page.goto(f"{portal}/consents")
    assert "/verify" in page.url
    await page.goto(f"{portal}/verify/email")
    await page.locator('input[name="customer_number"]').fill(customer.number)
    await page.locator('form[action="/verify/email"] button[type="submit"]').click()
    await page.locator('input[name="code"]').wait_for()
    mail = await mailbox.wait_for(to=address, timeout=30)
    [code] = re.findall(r"\b\d{6}\b", mailbox.text(mail))[:1]
    await page.locator('input[name="code"]').fill(code)
    await page.locator('form[action="/verify/code"] button[type="submit"]').click()
    await page.wait_for_load_state()

    await page.goto(f"{portal}/consents")
    profiling = page.locator("#purpose-profiling")
    await profiling.get_by_role("heading", name="Profilointi").wait_for()
    assert await profiling.locator("[data-state]").get_attribute("data-state") == "granted"
    assert "verkkosivuillamme" in await profiling.inner_text()  # how the consent was given
    await assert_accessible(page, context="consents, profiling granted")

    await profiling.get_by_role("button", name="Peru suostumus").click()
    await page.locator(".flash").wait_for()
    assert "Peruminen tuli voimaan heti" in await page.locator(".flash").inner_text()
    profiling = page.locator("#purpose-profiling")
    assert await profiling.locator("[data-state]").get_attribute("data-state") == "withdrawn"
    assert await profiling.get_by_role("button", name="Anna suostumus").is_visible()
    await assert_accessible(page, context="consents, profiling withdrawn")

    # The receipt of the withdrawal, as a JSON download under its stable name.
    async with page.expect_download() as download_info:
        await profiling.get_by_role("link", name=re.compile("Lataa kuitti")).click()
    download = await download_info.value
    assert re.fullmatch(r"consent-receipt-[0-9a-f-]{36}\.json", download.suggested_filename)
    receipt = json.loads((await download.path()).read_bytes())
    assert receipt["piiPrincipalId"] == customer.number and receipt["collectionMethod"] == "portal"
    assert receipt["services"][0]["purposes"][0]["state"] == "withdrawn"

    # Profiling stops: the profile is deleted, and a new reading is stored without one.
    await eventually(lambda: _none(profiles), timeout=15)
    async with Producer() as systems:
        await systems.send(REGISTRY_INBOUND, customer.number, reading(customer, 4))
    await eventually(
        lambda: fetchval(
            registry_db, "SELECT count(*) = 4 FROM consumption WHERE customer_number = $1", customer.number
        ),
        timeout=30,
    )
    assert await profiles() == 0


async def _none(count: Any) -> bool:
    return await count() == 0


async def test_the_consent_pages_in_english(suite, page, assert_accessible) -> None:  # type: ignore[no-untyped-def]
    """The same pages in the second language: a customer with nothing recorded gives consent to
    direct marketing (verified through the stand-in of strong identification, as `make up` runs it)."""
    if not {"portal", "consent"} <= set(suite.services):
        pytest.skip("the portal and the consent service are not installed in this checkout")
    portal = suite["portal"].url
    customer = new_customer()
    await page.goto(f"{portal}/lang/en?next=/privacy-statement")
    await page.get_by_role("heading", level=1, name="Privacy statement").wait_for()
    assert (
        "3 years after the customer relationship has ended"
        in await page.locator("#categories ~ section").first.inner_text()
    )
    await assert_accessible(page, context="privacy statement (en)")

    await page.goto(f"{portal}/verify/strong")
    await page.locator('input[name="customer_number"]').fill(customer.number)
    await page.locator('form[action="/verify/strong"] button[type="submit"]').click()
    await page.wait_for_load_state()
    await page.goto(f"{portal}/consents")
    marketing = page.locator("#purpose-direct_marketing")
    assert await marketing.locator("[data-state]").get_attribute("data-state") == "none"
    assert "No receipts yet" in await page.locator("main").inner_text()
    await assert_accessible(page, context="consents, nothing recorded (en)")

    await marketing.get_by_role("button", name="Give consent").click()
    await page.locator(".flash").wait_for()
    marketing = page.locator("#purpose-direct_marketing")
    assert await marketing.locator("[data-state]").get_attribute("data-state") == "granted"
    assert await page.get_by_role("table").locator("tbody tr").count() == 1  # its receipt
    await assert_accessible(page, context="consents, direct marketing given (en)")
