"""The staff console's requests in a real browser, on the suite as `make up` runs it: a data
protection officer registers an erasure received by signed letter, sees no approve button and
has a forged approval refused; the managing director logs in, finds the request in the queue,
approves it and watches it complete (what was kept and why) without reloading by hand. Every page
is checked with axe-core."""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from typing import Any

from suite import Suite

from lampo.synthetic import new_customer, seed

# Staff accounts made as an operator would, in a process with the staff service's configuration.
CREATE_USER = """
import sys
from lampo.staff.cli import _do
username, secret, role = sys.argv[1], sys.argv[2], sys.argv[3]
_do(lambda a: a.create_user("cli:test", username, secret, [role], interface="cli"))
"""


async def staff_user(suite: Suite, role: str) -> tuple[str, str]:
    username = f"{role.replace('_', '.')}.{uuid.uuid4().hex[:6]}"
    secret = f"Synteettinen-{uuid.uuid4().hex[:10]}-Kevät"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CREATE_USER, username, secret, role, env=suite["staff"].env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return username, secret


async def log_in(page: Any, suite: Suite, username: str, secret: str, assert_accessible: Any = None) -> None:
    await page.goto(f"{suite['staff'].url}/console/")
    assert page.url.endswith("/console/login?next=/console/")
    if assert_accessible:
        await assert_accessible(page, context="login")
    await page.get_by_label("Käyttäjätunnus").fill(username)
    await page.get_by_label("Salasana").fill(secret)
    await page.get_by_role("button", name="Kirjaudu", exact=True).click()
    await page.wait_for_url(re.compile(r"/console/confidentiality"))
    if assert_accessible:
        await assert_accessible(page, context="confidentiality commitment")
    await page.get_by_label("Sitoudun yllä olevaan tekstiin.").check()
    await page.get_by_role("button", name="Kirjaa sitoumukseni").click()
    await page.wait_for_url(re.compile(r"/console/$"))


async def test_the_managing_director_approves_an_erasure_and_the_dpo_cannot(
    suite: Suite, page: Any, assert_accessible: Any
) -> None:
    from playwright.async_api import expect

    customer = new_customer()
    await seed(suite.urls, customer)
    dpo = await staff_user(suite, "data_protection_officer")
    director = await staff_user(suite, "managing_director")
    base = suite["staff"].url

    # The officer registers an erasure that came by signed letter.
    await log_in(page, suite, *dpo, assert_accessible=assert_accessible)
    await assert_accessible(page, context="console start page")
    await page.get_by_role("link", name="Pyynnöt").first.click()
    await page.get_by_role("link", name="Kirjaa kirjeellä tai henkilökohtaisesti saapunut pyyntö").click()
    await assert_accessible(page, context="register a request")
    await page.get_by_label("Pyynnön laji").select_option("erasure")
    await page.get_by_label("Asiakasnumero").fill(customer.number)
    await page.get_by_label("Allekirjoitettu kirje").check()
    await page.get_by_role("button", name="Kirjaa pyyntö").click()
    await expect(page.get_by_text("Pyyntö on kirjattu.")).to_be_visible()
    request_page = page.url
    request_id = request_page.rsplit("/", 1)[1]
    # The page follows the request by itself until it waits for approval.
    await expect(page.locator("#request-status")).to_have_text("Odottaa hyväksyntää", timeout=60_000)
    await assert_accessible(page, context="request awaiting approval, as the DPO")
    await expect(page.get_by_role("button", name="Hyväksy poisto")).to_have_count(0)
    await expect(page.get_by_text("Pyyntö odottaa toimitusjohtajan hyväksyntää.")).to_be_visible()
    # A forged approval, with the officer's own session and CSRF token: refused.
    token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    forged = await page.request.post(f"{request_page}/approve", form={"csrf_token": token or ""})
    assert forged.status == 403
    await page.goto(f"{request_page}/approve")  # a GET is no approval either
    await page.goto(request_page)
    await expect(page.locator("#request-status")).to_have_text("Odottaa hyväksyntää")
    await page.get_by_role("button", name="Kirjaudu ulos").click()
    await expect(page.get_by_text("Olet kirjautunut ulos.")).to_be_visible()

    # The managing director finds it in the queue and approves it.
    await log_in(page, suite, *director)
    await page.goto(f"{base}/console/requests")
    await assert_accessible(page, context="request queue")
    row = page.locator("tr", has=page.get_by_role("link", name=request_id))
    await expect(row).to_contain_text("Odottaa hyväksyntää")
    await row.get_by_role("link", name=request_id).click()
    await assert_accessible(page, context="request awaiting approval, as the managing director")
    await page.get_by_role("button", name="Hyväksy poisto").click()
    await expect(page.get_by_text("Hyväksytty. Osallistujat aloittavat")).to_be_visible()
    # Without a reload by hand, the page shows the participants' progress until it completes.
    await expect(page.locator("#request-status")).to_have_text(re.compile(r"^Valmis"), timeout=120_000)
    await expect(page.locator("#progress")).to_contain_text("Accounting Act")  # billing keeps invoices, and says why
    await expect(page.get_by_role("link", name="Avaa pyynnön jäljitys jäljitysnäkymässä")).to_have_attribute(
        "href", re.compile(r"/zipkin/traces/[0-9a-f]{32}$")
    )
    await assert_accessible(page, context="completed request")


async def test_a_role_without_requests_gets_the_refusal_page(suite: Suite, page: Any, assert_accessible: Any) -> None:
    clerk = await staff_user(suite, "billing_clerk")
    await log_in(page, suite, *clerk)
    response = await page.goto(f"{suite['staff'].url}/console/requests")
    assert response is not None and response.status == 403
    await assert_accessible(page, context="refusal page")
    nav = page.get_by_role("navigation", name="Työkalun osiot")
    assert await nav.get_by_role("link", name="Pyynnöt").count() == 0


async def test_a_refused_form_value_gets_the_error_page_in_english_too(
    suite: Suite, page: Any, assert_accessible: Any
) -> None:
    dpo = await staff_user(suite, "data_protection_officer")
    await log_in(page, suite, *dpo)
    await page.goto(f"{suite['staff'].url}/lang/en?next=/console/requests")
    await expect_heading(page, "Data subject requests")
    await assert_accessible(page, context="request queue in English")
    response = await page.goto(f"{suite['staff'].url}/console/requests/no-such-request")
    assert response is not None and response.status == 404
    await expect_heading(page, "Not done")
    await assert_accessible(page, context="error page")


async def expect_heading(page: Any, text: str) -> None:
    from playwright.async_api import expect

    await expect(page.get_by_role("heading", level=1)).to_have_text(text)
