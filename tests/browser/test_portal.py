"""The privacy centre in a real browser, against the suite as tests/suite.py launches it (every
service a process, the registry seeded through registry.inbound.v1, mail caught by the suite's
SMTP server): a customer verifies by an e-mail code, asks for access and downloads the package;
and axe-core finds no serious or critical WCAG 2.1 AA violation on any of the portal's pages, in
their error states too."""

from __future__ import annotations

import re
import uuid
import zipfile
from typing import Any

import httpx
import pytest

from lampo.contracts.catalog import REGISTRY_INBOUND
from lampo.testing import Producer, customer_upserted, eventually


def new_customer_number() -> str:
    return str(900_000_000 + uuid.uuid4().int % 10**8)


async def seed_customer(suite: Any, n: int) -> tuple[str, str]:
    """A customer with an e-mail address, through registry.inbound.v1; known to the registry once
    it answers the portal's address look-up."""
    customer, address = new_customer_number(), f"selain{n}.{uuid.uuid4().hex[:6]}@example.fi"
    async with Producer() as producer:
        await producer.send(REGISTRY_INBOUND, customer, customer_upserted(customer, n, email=address))

    async def known() -> bool:
        async with httpx.AsyncClient() as http:
            answer = await http.get(
                f"{suite['registry'].url}/v1/subjects/{customer}/email", headers=suite.as_caller("portal")
            )
        return answer.status_code == 200

    await eventually(known, timeout=90)
    return customer, address


async def test_a_customer_verifies_by_e_mail_code_asks_for_access_and_downloads_the_package(
    suite: Any, page: Any, mailbox: Any, assert_accessible: Any, tmp_path: Any
) -> None:
    portal = suite["portal"].url
    customer, address = await seed_customer(suite, 971)

    await page.goto(f"{portal}/")
    await assert_accessible(page, context="home")
    await page.click('main a[href="/verify"]')
    await assert_accessible(page, context="verify: choose a way")
    await page.click('a[href="/verify/email"]')
    await assert_accessible(page, context="verify: customer number")

    await page.fill("#customer_number", customer)
    await page.click('button[type="submit"]')
    await page.wait_for_url(f"{portal}/verify/code")
    await assert_accessible(page, context="verify: code")
    mail = await mailbox.wait_for(to=address, subject="vahvistuskoodi", timeout=60)
    code = re.search(r"\b(\d{6})\b", mailbox.text(mail))
    assert code, mailbox.text(mail)
    assert customer not in mailbox.text(mail)
    assert address not in await page.content()  # the address is never shown

    await page.fill("#code", "000000" if code.group(1) != "000000" else "111111")
    await page.click('button[type="submit"]')
    assert await page.locator(".error-summary a[href='#code']").count() == 1
    await assert_accessible(page, context="verify: a wrong code")
    await page.fill("#code", code.group(1))
    await page.click('button[type="submit"]')
    await page.wait_for_url(f"{portal}/requests")
    await assert_accessible(page, context="my requests (none yet)")

    await page.click('main a[href="/requests/new"]')
    await assert_accessible(page, context="new request: choose the kind")
    await page.click('a[href="/requests/new/access"]')
    await assert_accessible(page, context="new request: access")
    await page.click('main button[type="submit"]')
    await page.wait_for_url(re.compile(rf"{re.escape(portal)}/requests/[0-9a-f-]{{36}}$"))
    request_id = page.url.rsplit("/", 1)[1]
    await assert_accessible(page, context="status: just sent")

    download_link = page.locator(f'a[href="/requests/{request_id}/package"]')

    async def package_ready() -> bool:
        await page.reload()
        return await download_link.count() == 1

    await eventually(package_ready, timeout=240, interval=1.0)
    await assert_accessible(page, context="status: completed, package ready")
    async with page.expect_download() as downloading:
        await download_link.click()
    download = await downloading.value
    saved = tmp_path / "package.zip"
    await download.save_as(saved)
    with zipfile.ZipFile(saved) as package:
        names = package.namelist()
    assert "manifest.json" in names and any(n.startswith("data/") for n in names), names

    received = await mailbox.wait_for(to=address, subject="vastaanottaneet", timeout=60)
    done = await mailbox.wait_for(to=address, subject="käsitelty", timeout=120)
    for message in (received, done):
        assert f"{portal}/requests/{request_id}" in mailbox.text(message) and customer not in mailbox.text(message)

    await page.goto(f"{portal}/requests")
    assert await page.locator(f'a[href="/requests/{request_id}"]').count() == 1
    await assert_accessible(page, context="my requests")


@pytest.mark.parametrize("locale", ["en-GB"])
async def test_every_page_of_the_portal_is_accessible_in_english_too(
    suite: Any, page: Any, assert_accessible: Any, locale: str
) -> None:
    portal = suite["portal"].url
    await page.goto(f"{portal}/lang/en?next=/verify/strong")  # the language switch (Finnish is the default)
    await page.wait_for_url(f"{portal}/verify/strong")
    assert "not real identification" in await page.content()  # the stand-in says what it is
    await assert_accessible(page, context="verify: stand-in of strong identification")
    await page.click('button[type="submit"]')  # no customer number: an error next to the field
    assert await page.locator("#customer_number[aria-invalid='true']").count() == 1
    await assert_accessible(page, context="stand-in: missing number")
    await page.fill("#customer_number", new_customer_number())
    await page.click('button[type="submit"]')
    await page.wait_for_url(f"{portal}/requests")

    for kind in ("portability", "rectification", "erasure", "objection", "restriction"):
        await page.goto(f"{portal}/requests/new/{kind}")
        await assert_accessible(page, context=f"new request: {kind}")
    await page.goto(f"{portal}/requests/new/rectification")
    await page.fill("#email", "not-an-address")
    await page.click('main button[type="submit"]')
    assert await page.locator(".error-summary a[href='#email']").count() == 1
    await assert_accessible(page, context="rectification: an invalid address")
    for kind in ("erasure", "objection", "restriction"):
        await page.goto(f"{portal}/requests/new/{kind}")
        await page.click('main button[type="submit"]')
        assert await page.locator(".error-summary").count() == 1, kind
        await assert_accessible(page, context=f"{kind}: nothing chosen")

    await page.goto(f"{portal}/requests/new/objection")
    await page.check("#scope-profiling")
    await page.click('main button[type="submit"]')
    await page.wait_for_url(re.compile(rf"{re.escape(portal)}/requests/[0-9a-f-]{{36}}$"))
    await assert_accessible(page, context="status: an objection")

    await page.goto(f"{portal}/requests/{uuid.uuid4()}")
    await assert_accessible(page, context="not found")
    await page.click('button:has-text("Log out")')
    await page.wait_for_url(f"{portal}/")
    await assert_accessible(page, context="home after logout")
