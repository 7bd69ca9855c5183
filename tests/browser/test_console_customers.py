"""The staff console's customer pages in a real browser, on the suite as `make up` runs it: a
customer-service user finds a customer by name (the value posted, never in the URL), sees the
customer relationship from the register, the call recordings (and plays one from the console's own
origin) and the consent ledger, but no billing at all; and cannot approve an erasure (no button
to press, and a forged POST with the user's own session and CSRF token is refused). A billing
clerk sees the invoice and no recording. Every page is checked with axe-core."""

from __future__ import annotations

import re
from typing import Any

import httpx
from people import console_log_in as log_in
from people import staff_user
from suite import Suite

from lampo.synthetic import new_customer, seed, submit, submitted
from lampo.testing import eventually


async def test_customer_service_sees_no_billing_and_cannot_approve(
    suite: Suite, page: Any, assert_accessible: Any
) -> None:
    from playwright.async_api import expect

    customer = new_customer()
    await seed(suite.urls, customer)
    base = suite["staff"].url
    user = await staff_user(suite, "customer_service")
    await log_in(page, suite, *user)

    # The look-up: by name, through the registry's blind indexes.
    await page.get_by_role("navigation", name="Työkalun osiot").get_by_role("link", name="Asiakkaat").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Etsi asiakas")
    await assert_accessible(page, context="customer search")
    await page.get_by_label("Hakuperuste").select_option("name")
    await page.get_by_label("Hakuarvo").fill(f"  asiakas{customer.n}   TESTI{customer.n} ")
    await page.get_by_role("button", name="Hae", exact=True).click()
    result = page.get_by_role("link", name=f"Asiakas {customer.number}")
    await expect(result).to_be_visible(timeout=30_000)
    assert "asiakas" not in page.url.lower().replace("/console/customers", "")  # the value is not in the URL
    await assert_accessible(page, context="search results")
    await result.click()
    await page.wait_for_url(re.compile(rf"/console/customers/{customer.number}$"))
    await assert_accessible(page, context="customer page, customer service")

    # What the role reads: the register, the recordings with playback, the consent ledger.
    await expect(page.get_by_role("heading", name="Asiakassuhde", level=2)).to_be_visible()
    await expect(page.get_by_role("heading", name="Puhelutallenteet ja sähköpostiarkisto", level=3)).to_be_visible()
    await expect(page.get_by_role("heading", name="Suostumusrekisteri", exact=True, level=3)).to_be_visible()
    audio = page.locator("audio")
    await expect(audio).to_have_count(1)
    source = await audio.get_attribute("src")
    assert source is not None and source.startswith("/console/customers/")  # the console's own origin
    played = await page.request.get(f"{base}{source}")
    assert played.status == 200 and played.headers["content-type"] == "audio/wav"
    assert await played.body() == customer.audio
    # ... and not billing: no heading, no invoice, not even in the page's source.
    await expect(page.get_by_role("heading", name="Laskutustiedot")).to_have_count(0)
    assert customer.invoice_number not in await page.content()

    # An erasure waiting for approval: this user has no button, and a forged approval is refused.
    request_id = await submit(submitted("erasure", customer.number))
    dsar = httpx.AsyncClient(base_url=suite["dsar"].url, headers=suite.as_caller("portal"))

    async def state() -> str:  # "" until the coordinator has taken the request in (404 before)
        return str((await dsar.get(f"/v1/requests/{request_id}")).json().get("status", ""))

    await eventually(lambda: _is(state, "awaiting_approval"), timeout=60)
    response = await page.goto(f"{base}/console/requests/{request_id}")
    assert response is not None and response.status == 403  # not this role's page at all
    await expect(page.get_by_role("button", name="Hyväksy poisto")).to_have_count(0)
    await assert_accessible(page, context="refusal page, customer service")
    token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    forged = await page.request.post(f"{base}/console/requests/{request_id}/approve", form={"csrf_token": token or ""})
    assert forged.status == 403
    assert await state() == "awaiting_approval"
    await dsar.aclose()


async def _is(state: Any, wanted: str) -> bool:
    return bool(await state() == wanted)


async def test_a_billing_clerk_sees_the_invoice_and_no_recording(
    suite: Suite, page: Any, assert_accessible: Any
) -> None:
    from playwright.async_api import expect

    customer = new_customer()
    await seed(suite.urls, customer)
    clerk = await staff_user(suite, "billing_clerk")
    await log_in(page, suite, *clerk)
    await page.goto(f"{suite['staff'].url}/lang/en?next=/console/customers")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Find a customer")
    await page.get_by_label("Search by").select_option("identity_code")
    await page.get_by_label("Value").fill(customer.identity_code)
    await page.get_by_role("button", name="Search", exact=True).click()
    await page.get_by_role("link", name=f"Customer {customer.number}").click()
    await expect(page.get_by_role("heading", name="Billing", level=2)).to_be_visible()
    await expect(page.get_by_text(customer.invoice_number)).to_be_visible()
    await expect(page.get_by_role("heading", name="Customer relationship")).to_have_count(0)
    await expect(page.locator("audio")).to_have_count(0)
    await assert_accessible(page, context="customer page, billing clerk, in English")
    refused = await page.request.get(
        f"{suite['staff'].url}/console/customers/{customer.number}/recordings/{customer.recording_id}/audio"
    )
    assert refused.status == 403
    # A value that cannot be an identity code: the field is named, nothing is searched.
    await page.goto(f"{suite['staff'].url}/console/customers")
    await page.get_by_label("Search by").select_option("identity_code")
    await page.get_by_label("Value").fill("010101-0000")
    await page.get_by_role("button", name="Search", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("not valid")
    await assert_accessible(page, context="refused search")
