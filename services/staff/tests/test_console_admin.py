"""The staff console's administrative pages over HTTP, on the real staff service, registry and
PostgreSQL: each page opens for the roles that may use it and answers 403 (audited) to the rest;
an administrator creates users, grants and revokes roles and unlocks a locked account; an auditor
finds who read a customer and verifies the chain with its progress page; a data protection
officer reads the record of processing and follows up the accuracy report (§12)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from console_support import Browser, text_of
from staff_support import Suite, password

from lampo.contracts.catalog import REGISTRY_INBOUND
from lampo.staff.domain import AuditEntry
from lampo.testing import Producer, customer_upserted, eventually

ADMIN, AUDITOR, DPO = "administrator", "auditor", "data_protection_officer"
# Each page and the suite's roles that open it (the others get the 403 page).
PAGES = {
    "/console/admin": {ADMIN, AUDITOR, DPO},
    "/console/admin/alerts": {ADMIN, AUDITOR},
    "/console/admin/users": {ADMIN},
    "/console/admin/audit": {AUDITOR},
    "/console/admin/audit/verify": {AUDITOR},
    "/console/admin/record": {DPO, AUDITOR},
    "/console/admin/accuracy": {DPO},
}
ROLES = (ADMIN, "customer_service", "billing_clerk", DPO, AUDITOR)


async def test_each_page_opens_for_its_roles_only_and_a_refusal_is_audited(suite: Suite) -> None:
    for role in ROLES:
        async with Browser(suite) as browser:
            await browser.login_as(role)
            home = await browser.get("/console/")  # the navigation leads there exactly when it opens
            assert ('href="/console/admin"' in home.text) == (role in PAGES["/console/admin"]), role
            for path, allowed in PAGES.items():
                r = await browser.get(path)
                expected = 200 if role in allowed else 403
                assert r.status_code == expected, f"{role} {path}: {r.status_code}"
    # Not logged in: the login page, never the content.
    async with Browser(suite) as anonymous:
        for path in PAGES:
            r = await anonymous.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
    refusals, _ = await suite.staff.access.search_audit("test", actor=suite.users["customer_service"][0])
    assert any(r["action"] == "console_refused" and r["outcome"] == "forbidden" for r in refusals)


async def test_forms_of_other_roles_change_nothing(suite: Suite) -> None:
    async with Browser(suite) as auditor:
        await auditor.login_as(AUDITOR)
        r = await auditor.post("/console/admin/users/customer.service.user/grant", {"role": ADMIN})
        assert r.status_code == 403
        r = await auditor.post("/console/admin/accuracy/followups",
                               {"customer_number": "X-1", "finding": "unconfirmed_contact", "outcome": "corrected"})  # fmt: skip
        assert r.status_code == 403
    async with Browser(suite) as admin:
        await admin.login_as(ADMIN)
        r = await admin.post("/console/admin/audit/verify")
        assert r.status_code == 403
        # Without the form's CSRF token nothing runs, even for the right role.
        r = await admin.post("/console/admin/users/customer.service.user/grant", {"role": ADMIN}, csrf=False)
        assert r.status_code == 403
    users = {u["username"]: u["roles"] for u in await suite.staff.access.users()}
    assert users["customer.service.user"] == ["customer_service"]


async def _lock(suite: Suite, username: str) -> None:
    for attempt in range(suite.settings.lockout_after):
        r = await suite.client.post("/v1/login", json={"username": username, "password": f"wrong-{attempt}-xxxxxxxx"})
        assert r.status_code == 401


async def test_an_administrator_creates_a_user_grants_revokes_and_unlocks(suite: Suite) -> None:
    secret = password()
    async with Browser(suite) as admin:
        await admin.login_as(ADMIN)
        weak = await admin.post("/console/admin/users", {"username": "new.clerk", "password": "short"})
        assert weak.status_code == 422 and "Salasana on liian heikko" in weak.text and "short" not in weak.text
        r = await admin.post(
            "/console/admin/users", {"username": "new.clerk", "password": secret, "roles": "billing_clerk"}
        )
        assert r.status_code == 303 and r.headers["location"] == "/console/admin/users"
        page = await admin.get("/console/admin/users")
        assert "Käyttäjä new.clerk luotu." in page.text
        taken = await admin.post("/console/admin/users", {"username": "new.clerk", "password": password()})
        assert taken.status_code == 409 and "Käyttäjätunnus on jo käytössä." in taken.text

        assert (await admin.post("/console/admin/users/new.clerk/grant", {"role": AUDITOR})).status_code == 303
        assert (await admin.post("/console/admin/users/new.clerk/revoke", {"role": "billing_clerk"})).status_code == 303
        roles = {u["username"]: u["roles"] for u in await suite.staff.access.users()}
        assert roles["new.clerk"] == [AUDITOR]
        last = await admin.post("/console/admin/users/root.admin/revoke", {"role": ADMIN})
        assert last.status_code == 409 and "Viimeinen pääkäyttäjä pitää roolinsa" in last.text

        await _lock(suite, "new.clerk")
        async with Browser(suite) as locked_out:
            assert (await locked_out.login("new.clerk", secret)).status_code == 401
        page = await admin.get("/console/admin/users")
        locked = text_of(page.text.split('id="locked"')[1].split("<h2")[0])
        assert "new.clerk" in locked
        alerts = await admin.get("/console/admin/alerts")
        assert "Tunnus lukittu epäonnistuneiden kirjautumisten vuoksi" in alerts.text and "new.clerk" in alerts.text

        r = await admin.post("/console/admin/users/new.clerk/unlock")
        assert r.status_code == 303
        page = await admin.get("/console/admin/users")
        assert "Tunnuksen new.clerk lukitus avattu" in page.text
        assert "new.clerk" not in text_of(page.text.split('id="locked"')[1].split("<h2")[0])
    async with Browser(suite) as clerk:
        assert (await clerk.login("new.clerk", secret)).status_code == 303
    # Every change is in the audit log, made through the console by the administrator.
    rows, _ = await suite.staff.access.search_audit("test", actor="root.admin")
    done = {(r["action"], r["interface"]) for r in rows}
    assert {("user_created", "console"), ("role_granted", "console"), ("role_revoked", "console"),
            ("account_unlocked", "console")} <= done  # fmt: skip


async def test_an_auditor_finds_who_read_a_customer_page_by_page(suite: Suite) -> None:
    reader = await suite.as_role("customer_service")
    assert (await suite.client.get(f"/v1/subjects/{suite.customer}", headers=reader)).status_code == 200
    other = f"ADM-{uuid.uuid4().hex[:8]}"
    for _ in range(55):  # more than a page
        await suite.staff.access.audit(AuditEntry("bulk.reader", "subject_read", "http", customer_number=other))
    async with Browser(suite) as auditor:
        await auditor.login_as(AUDITOR)
        page = await auditor.get("/console/admin/audit", params={"customer": suite.customer})
        assert page.status_code == 200
        rows = re.findall(r"<tr>\s*<td>\d+</td>(.*?)</tr>", page.text, re.S)
        assert any("customer.service.user" in r and "subject_read" in r for r in rows)
        assert all(suite.customer in r for r in rows)

        first = await auditor.get("/console/admin/audit", params={"customer": other})
        assert len(re.findall(r"<tr>\s*<td>\d+</td>", first.text)) == 50
        older = re.search(r'href="([^"]+)" rel="next"', first.text)
        assert older, "no link to the older rows"
        second = await auditor.get(older.group(1).replace("&amp;", "&"))
        assert len(re.findall(r"<tr>\s*<td>\d+</td>", second.text)) == 5
        assert 'rel="next"' not in second.text

        by_user = await auditor.get("/console/admin/audit", params={"actor": "customer.service.user"})
        assert "subject_read" in by_user.text and "bulk.reader" not in by_user.text
        now = datetime.now(UTC)
        future = (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
        none = await auditor.get("/console/admin/audit", params={"customer": other, "since": future})
        assert "Hakua vastaavia rivejä ei ole." in none.text
        bad = await auditor.get("/console/admin/audit", params={"since": "yesterday"})
        assert bad.status_code == 422
    searches, _ = await suite.staff.access.search_audit("test", actor=suite.users[AUDITOR][0], customer_number=other)
    assert searches and searches[0]["action"] == "audit_searched"


async def test_an_auditor_verifies_the_chain_and_sees_its_progress(suite: Suite) -> None:
    from lampo.staff.audit_head import last_head

    async def head_published() -> bool:  # the service publishes its first head a few seconds in
        return await last_head(suite.settings, b"presence only: validity is the check's") is not None

    await eventually(head_published, timeout=30)
    async with Browser(suite) as auditor:
        await auditor.login_as(AUDITOR)
        start = await auditor.get("/console/admin/audit/verify")
        assert "Tarkista tapahtumaketju" in start.text
        r = await auditor.post("/console/admin/audit/verify")
        assert r.status_code == 303
        job = r.headers["location"]
        assert job.startswith("/console/admin/audit/verify/")
        seen: list[str] = []

        async def finished() -> bool:
            page = await auditor.get(job)
            seen.append(page.text)
            return 'http-equiv="refresh"' not in page.text

        await eventually(finished, timeout=60)
        result = seen[-1]
        assert "Ketju on eheä" in result, text_of(result)
        if len(seen) > 1:  # caught running: the page said how far and reloads itself
            assert "<progress" in seen[0] and 'http-equiv="refresh"' in seen[0]
    async with Browser(suite) as admin:  # another user never sees the job
        await admin.login_as(ADMIN)
        assert (await admin.get(job)).status_code == 403


async def test_the_record_of_processing_is_rendered_from_the_data_map(suite: Suite) -> None:
    async with Browser(suite) as dpo:
        await dpo.login_as(DPO)
        page = await dpo.get("/console/admin/record")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "Seloste käsittelytoimista" in text and "Muuramen Lämpö Oy" in text
    for category in ("basic", "contact", "billing", "consumption"):
        assert f"<code>{category}</code>" in page.text
    assert "Henkilöstön salassapitositoumukset" in text and suite.users[DPO][0] in text


async def test_the_accuracy_report_and_its_follow_up(suite: Suite) -> None:
    stale = str(uuid.uuid4().int % 10**9)
    async with Producer() as producer:
        await producer.send(
            REGISTRY_INBOUND, stale, customer_upserted(stale, 977, time=datetime.now(UTC) - timedelta(days=1000))
        )
    reader = await suite.as_role("customer_service")

    async def arrived() -> bool:  # in the register (read through the staff API)
        return (await suite.client.get(f"/v1/subjects/{stale}", headers=reader)).status_code == 200

    await eventually(arrived)
    async with Browser(suite) as dpo:
        await dpo.login_as(DPO)
        assert (await dpo.post("/console/admin/accuracy", {"years": "0"})).status_code == 422
        r = await dpo.post("/console/admin/accuracy", {"years": "2"})
        assert r.status_code == 303
        job = r.headers["location"]
        pages: list[str] = []

        async def finished() -> bool:
            pages.append((await dpo.get(job)).text)
            return 'http-equiv="refresh"' not in pages[-1]

        await eventually(finished, timeout=60)
        report = pages[-1]
        unconfirmed = report.split("Vahvistamattomat yhteystiedot</h2>")[1]
        assert stale in unconfirmed, text_of(report)
        assert "Testikatu" not in report and "example.fi" not in report  # customer numbers only

        r = await dpo.post("/console/admin/accuracy/followups", {"customer_number": stale, "finding": "unconfirmed_contact",
                                                                 "outcome": "customer_contacted", "job": job.rsplit("/", 1)[1]})  # fmt: skip
        assert r.status_code == 303 and r.headers["location"] == job + "#followups"
        after = await dpo.get(job)
        assert f"Jatkotoimi kirjattu asiakkaalle {stale}." in after.text
        recorded = text_of(after.text.split('id="followups"')[1])
        assert (
            stale in recorded
            and suite.users[DPO][0] in recorded
            and "Asiakasta pyydetty tarkistamaan tietonsa" in recorded
        )
        bad = await dpo.post("/console/admin/accuracy/followups",
                             {"customer_number": stale, "finding": "unconfirmed_contact", "outcome": "ignored"})  # fmt: skip
        assert bad.status_code == 422
    rows, _ = await suite.staff.access.search_audit("test", customer_number=stale)
    assert [(r["actor"], r["action"]) for r in rows if r["action"] == "accuracy_followup"] == [
        (suite.users[DPO][0], "accuracy_followup")
    ]
