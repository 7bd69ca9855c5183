"""The console's customer pages (issue 18) on the real registry, billing, recordings and consent
ledger: the look-up posted with its CSRF token (the value never in a URL, a redirect or the audit
log), the customer page by category as the role allows (a category outside the role neither
shown nor fetched), recordings played through the console, and each view audited under the
user's name with interface "console"."""

from __future__ import annotations

import json
from typing import Any

from console_support import Browser, text_of
from staff_support import AUDIO, INVOICE_LINE, Suite

from lampo.testing import synthetic_identity_code


async def last_audit(suite: Suite, actor: str, action: str) -> Any:
    async with suite.staff.runtime.pool.acquire() as conn:
        return await conn.fetchrow(
            "SELECT interface, outcome, customer_number, categories, detail::text AS detail FROM audit_log"
            " WHERE actor = $1 AND action = $2 ORDER BY seq DESC LIMIT 1",
            actor,
            action,
        )


async def test_the_look_up_finds_the_customer_and_keeps_the_value_out_of_urls_and_the_log(suite: Suite) -> None:
    async with Browser(suite) as page:
        await page.login_as("customer_service")
        form = await page.get("/console/customers")
        assert form.status_code == 200 and 'name="csrf_token"' in form.text and 'method="post"' in form.text
        name = "  asiakas4242   TESTI4242 "
        r = await page.post("/console/customers", {"by": "name", "value": name})
        assert r.status_code == 200, r.text  # answered in place: no redirect carrying the value
        assert f'href="/console/customers/{suite.customer}"' in r.text
        assert "asiakas4242" not in r.text.casefold().replace(f"/console/customers/{suite.customer}", "")
        row = await last_audit(suite, "customer.service.user", "customer_search")
        assert (row["interface"], row["outcome"]) == ("console", "ok")
        assert "asiakas4242" not in row["detail"].casefold()
        for by, value in (("identity_code", synthetic_identity_code(4242)), ("email", "ASIAKAS4242@example.fi"),
                          ("customer_number", suite.customer)):  # fmt: skip
            r = await page.post("/console/customers", {"by": by, "value": value})
            assert f'href="/console/customers/{suite.customer}"' in r.text, by
        nothing = await page.post("/console/customers", {"by": "name", "value": "Ei Ketään"})
        assert nothing.status_code == 200 and "/console/customers/" not in nothing.text.replace(
            'action="/console/customers"', ""
        )
        bad = await page.post("/console/customers", {"by": "identity_code", "value": "010101-0000"})
        assert bad.status_code == 422 and 'role="alert"' in bad.text and "010101-0000" not in bad.text
        forged = await page.post("/console/customers", {"by": "name", "value": "Testi4242 Asiakas4242"}, csrf=False)
        assert forged.status_code == 403


async def test_the_customer_page_shows_only_the_roles_categories_and_fetches_no_other(suite: Suite) -> None:
    async with Browser(suite) as page:
        await page.login_as("customer_service")
        suite.store_calls["billing"].clear()
        r = await page.get(f"/console/customers/{suite.customer}")
        assert r.status_code == 200, r.text
        text = text_of(r.text)
        assert "Asiakassuhde" in text and "Perustiedot" in text and "Asiakas4242" in text
        assert "Puhelutallenteet ja sähköpostiarkisto" in text and "Suostumusrekisteri" in text
        assert "Laskutustiedot" not in text and INVOICE_LINE not in text
        assert suite.store_calls["billing"] == []  # outside the role: not fetched
        assert (
            f'<audio controls preload="none" src="/console/customers/{suite.customer}/recordings/{suite.recording_id}/audio"'
            in r.text
        )
        row = await last_audit(suite, "customer.service.user", "subject_read")
        assert (row["interface"], row["outcome"], row["customer_number"]) == ("console", "ok", suite.customer)
        assert "billing" not in row["categories"] and "customer_relationship" in row["categories"]

        played = await page.get(f"/console/customers/{suite.customer}/recordings/{suite.recording_id}/audio")
        assert played.status_code == 200 and played.headers["content-type"] == "audio/wav" and played.content == AUDIO
        row = await last_audit(suite, "customer.service.user", "recording_played")
        assert (row["interface"], row["outcome"]) == ("console", "ok")
        assert json.loads(json.loads(row["detail"])) == {"recording_id": suite.recording_id}

    async with Browser(suite) as page:
        await page.login_as("billing_clerk")
        r = await page.get(f"/console/customers/{suite.customer}")
        text = text_of(r.text)
        assert "Laskutustiedot" in text and INVOICE_LINE in text
        assert "Asiakassuhde" not in text and "<audio" not in r.text
        refused = await page.get(f"/console/customers/{suite.customer}/recordings/{suite.recording_id}/audio")
        assert refused.status_code == 403


async def test_a_role_without_customer_data_gets_the_refusal_page(suite: Suite) -> None:
    async with Browser(suite) as page:
        await page.login_as("auditor")
        for path in ("/console/customers", f"/console/customers/{suite.customer}"):
            r = await page.get(path)
            assert r.status_code == 403 and "Asiakas4242" not in r.text
        r = await page.post("/console/customers", {"by": "name", "value": "Testi4242 Asiakas4242"})
        assert r.status_code == 403
    async with Browser(suite) as page:  # not logged in: the login page
        r = await page.get(f"/console/customers/{suite.customer}")
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
