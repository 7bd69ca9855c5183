"""The staff console's administrative pages in a real browser, on the suite as `make up` starts
it: an administrator unlocks an account locked by failed logins; an auditor finds who read a
customer and verifies the audit chain, watching the check's progress page refresh itself without
script; a data protection officer reads the record of processing and runs the accuracy report.
axe-core checks every page (WCAG 2.1 AA)."""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Any

import httpx
from people import console_log_in as log_in
from people import staff_user
from suite import Suite

from lampo.contracts.catalog import REGISTRY_INBOUND
from lampo.testing import Producer, customer_upserted, eventually

VERSION = os.environ.get("LAMPO_CONFIDENTIALITY_TEXT_VERSION", "2026-1")


async def test_an_administrator_unlocks_a_locked_account(suite: Suite, page: Any, assert_accessible: Any) -> None:
    from playwright.async_api import expect

    admin = await staff_user(suite, "administrator")
    clerk, clerk_secret = await staff_user(suite, "customer_service")
    async with httpx.AsyncClient(base_url=suite["staff"].url, timeout=30) as http:
        for attempt in range(5):  # the lockout's threshold (LAMPO_LOCKOUT_AFTER)
            r = await http.post("/v1/login", json={"username": clerk, "password": f"wrong-{attempt}-xxxxxxxxx"})
            assert r.status_code == 401, r.text
        assert (await http.post("/v1/login", json={"username": clerk, "password": clerk_secret})).status_code == 401

        await log_in(page, suite, *admin)
        await page.goto(f"{suite['staff'].url}/console/admin")
        await assert_accessible(page, context="administration")
        await page.click("text=Kirjautumishälytykset")
        await expect(page.locator("main")).to_contain_text(clerk)
        await assert_accessible(page, context="login alerts")

        await page.goto(f"{suite['staff'].url}/console/admin/users")
        locked = page.locator("table", has=page.locator("caption", has_text="lukitut tunnukset"))
        await expect(locked).to_contain_text(clerk)
        await assert_accessible(page, context="users, roles and locked accounts")
        await page.get_by_role("button", name=f"Avaa tunnuksen {clerk} lukitus").click()
        await expect(page.locator(".flash")).to_contain_text(f"Tunnuksen {clerk} lukitus avattu")
        await expect(page.locator("main")).not_to_contain_text(f"Avaa tunnuksen {clerk} lukitus")
        await assert_accessible(page, context="users after the unlock")

        assert (await http.post("/v1/login", json={"username": clerk, "password": clerk_secret})).status_code == 200


async def test_an_auditor_finds_who_read_a_customer_and_verifies_the_chain(
    suite: Suite, page: Any, assert_accessible: Any
) -> None:
    from playwright.async_api import expect

    reader, reader_secret = await staff_user(suite, "customer_service")
    auditor = await staff_user(suite, "auditor")
    customer = str(uuid.uuid4().int % 10**9)
    async with Producer() as producer:
        await producer.send(REGISTRY_INBOUND, customer, customer_upserted(customer, 978))
    async with httpx.AsyncClient(base_url=suite["staff"].url, timeout=30) as http:
        login = await http.post("/v1/login", json={"username": reader, "password": reader_secret})
        headers = {"authorization": f"Bearer {login.json()['token']}"}
        assert (
            await http.post("/v1/me/confidentiality", json={"text_version": VERSION}, headers=headers)
        ).status_code == 200

        async def read() -> bool:
            return (await http.get(f"/v1/subjects/{customer}", headers=headers)).status_code == 200

        # Every look-up is audited, found or not; the customer is usually in the register by
        # now, but a loaded machine may ingest later, and the audit row is what this test reads.
        with contextlib.suppress(AssertionError):
            await eventually(read, timeout=30, interval=1)
    await log_in(page, suite, *auditor)
    await page.goto(f"{suite['staff'].url}/console/admin/audit")
    await assert_accessible(page, context="audit log search")
    await page.fill("input[name=customer]", customer)
    await page.click("form[role=search] button[type=submit]")
    results = page.locator("table", has=page.locator("caption", has_text="Tapahtumalokin rivit"))
    row = results.locator("tr", has_text=reader)
    await expect(row.first).to_contain_text("subject_read")
    await expect(row.first).to_contain_text(customer)
    await assert_accessible(page, context="audit log results")

    await page.click("text=Tapahtumaketjun tarkistus")
    await assert_accessible(page, context="chain verification")
    await page.get_by_role("button", name="Tarkista tapahtumaketju").click()
    # The job's page reloads itself (<meta http-equiv="refresh">) until the result is there.
    await expect(page.locator("main")).to_contain_text("Ketju on eheä", timeout=60_000)
    await assert_accessible(page, context="chain verification result")


async def test_the_record_of_processing_and_the_accuracy_report(
    suite: Suite, page: Any, assert_accessible: Any
) -> None:
    from playwright.async_api import expect

    dpo = await staff_user(suite, "data_protection_officer")
    await log_in(page, suite, *dpo)
    await page.goto(f"{suite['staff'].url}/console/admin/record")
    await expect(page.locator("h1")).to_contain_text("Seloste käsittelytoimista")
    await assert_accessible(page, context="record of processing")

    await page.goto(f"{suite['staff'].url}/console/admin/accuracy")
    await assert_accessible(page, context="accuracy report")
    await page.fill("input[name=years]", "3")
    await page.click("form[action='/console/admin/accuracy'] button[type=submit]")
    await expect(page.get_by_role("button", name="Aja raportti uudelleen")).to_be_visible(timeout=60_000)
    await expect(page.locator("h2", has_text="Vahvistamattomat yhteystiedot")).to_be_visible()
    await expect(page.locator("main")).not_to_contain_text("Raporttia ei saatu tehtyä")
    await assert_accessible(page, context="accuracy report result")
