"""An erasure from the subject's side to the director's and back, in a real browser on the suite
as tests/suite.py launches it (every service a process, real Kafka, PostgreSQL and SMTP): a
customer verified by e-mail code asks for erasure in the privacy centre; the managing director
approves it in the staff console; the customer's status page then shows it completed, with what
was kept and why (billing's invoices, under the Accounting Act)."""

from __future__ import annotations

import re
from typing import Any

from people import console_log_in, staff_user, verify_by_email_code
from suite import Suite

from lampo.synthetic import new_customer, seed


async def test_a_customer_asks_for_erasure_the_director_approves_it_and_the_status_page_says_what_was_kept(
    suite: Suite, browser: Any, page: Any, mailbox: Any, assert_accessible: Any
) -> None:
    from playwright.async_api import expect

    portal, console = suite["portal"].url, suite["staff"].url
    customer = new_customer()
    address = customer.personal_strings[3]
    await seed(suite.urls, customer)  # registry, billing (an invoice), recordings, consent

    # The customer: verified by the code mailed to the registered address, asks for erasure.
    await verify_by_email_code(page, suite, mailbox, customer.number, address)
    await page.goto(f"{portal}/requests/new/erasure")
    await page.click('main button[type="submit"]')  # without the confirmation: refused, said why
    assert await page.locator(".error-summary a[href='#confirm']").count() == 1
    await page.check("#confirm")
    await page.click('main button[type="submit"]')
    await page.wait_for_url(re.compile(rf"{re.escape(portal)}/requests/[0-9a-f-]{{36}}$"))
    status_page = page.url
    request_id = status_page.rsplit("/", 1)[1]

    async def status() -> str:
        await page.goto(status_page)
        return str(await page.locator("dl.facts .status").inner_text())

    await expect(page.locator("dl.facts .status")).to_be_visible()
    for _ in range(60):
        if await status() == "Odottaa hyväksyntää":
            break
        await page.wait_for_timeout(1000)
    assert await status() == "Odottaa hyväksyntää"
    await assert_accessible(page, context="status: erasure awaiting approval")

    # The managing director, in a browser of their own, approves it in the console.
    director = await browser.new_context(locale="fi-FI")
    try:
        desk = await director.new_page()
        await console_log_in(desk, suite, *await staff_user(suite, "managing_director"))
        await desk.goto(f"{console}/console/requests/{request_id}")
        await desk.get_by_role("button", name="Hyväksy poisto").click()
        await expect(desk.locator("#request-status")).to_have_text(re.compile(r"^Valmis"), timeout=120_000)
    finally:
        await director.close()

    # Back on the customer's status page: completed, and what was kept and why.
    await page.goto(status_page)
    await expect(page.locator("dl.facts .status")).to_have_text("Valmis, osa tiedoista säilytetään")
    kept = page.locator("section", has=page.get_by_text("Säilytetty, ja miksi:"))
    await expect(kept.first).to_contain_text("Accounting Act")
    await assert_accessible(page, context="status: erasure completed, with what was kept")
