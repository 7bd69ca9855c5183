"""The staff console's login (issue 18): the service's own login, lockout and audit behind a page;
the session holds the staff token only; the confidentiality commitment before customer data;
the navigation as the roles allow; logout ends the token; forms need their CSRF token."""

from __future__ import annotations

from typing import Any

from console_support import Browser, text_of
from staff_support import Suite, password


async def audit_rows(suite: Suite, action: str, actor: str) -> list[Any]:
    async with suite.staff.runtime.pool.acquire() as conn:
        return await conn.fetch(  # type: ignore[no-any-return]
            "SELECT interface, outcome FROM audit_log WHERE action = $1 AND actor = $2 ORDER BY seq", action, actor
        )


async def new_user(suite: Suite, username: str, roles: list[str]) -> str:
    secret = password()
    await suite.staff.access.create_user("test", username, secret, roles)
    return secret


async def test_a_page_without_login_leads_to_the_login_page(suite: Suite) -> None:
    async with Browser(suite) as browser:
        for path in ("/console/", "/console/confidentiality"):
            r = await browser.get(path)
            assert r.status_code == 303 and r.headers["location"] == f"/console/login?next={path}", path
        page = await browser.get("/console/login")
        assert page.status_code == 200
        assert 'lang="fi"' in page.text and "Kirjaudu" in page.text  # Finnish first
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        english = await browser.get("/lang/en?next=/console/login", follow_redirects=True)
        assert 'lang="en"' in english.text and "Log in to the staff console" in english.text


async def test_login_commitment_navigation_and_logout(suite: Suite) -> None:
    secret = await new_user(suite, "console.login", ["customer_service"])
    async with Browser(suite) as browser:
        wrong = await browser.post("/console/login", {"username": "console.login", "password": "not-it-at-all"})
        assert wrong.status_code == 401 and "Kirjautuminen epäonnistui" in wrong.text
        assert [tuple(r) for r in await audit_rows(suite, "login_failed", "console.login")] == [("console", "wrong_password")]

        r = await browser.login("console.login", secret, commit=False)
        assert r.status_code == 303 and r.headers["location"] == "/console/confidentiality?next=/console/"
        assert set(browser.session()) <= {"staff_token", "_csrf", "_flash"}  # nothing else of the user
        assert [tuple(r) for r in await audit_rows(suite, "login_succeeded", "console.login")] == [("console", "ok")]

        page = await browser.get("/console/confidentiality")
        assert page.status_code == 200 and suite.settings.confidentiality_text_version in page.text
        unticked = await browser.post("/console/confidentiality", {"text_version": suite.settings.confidentiality_text_version})
        assert unticked.status_code == 422
        done = await browser.post(
            "/console/confidentiality",
            {"text_version": suite.settings.confidentiality_text_version, "agree": "yes", "next": "/console/"},
        )
        assert done.status_code == 303 and done.headers["location"] == "/console/"
        assert [tuple(r) for r in await audit_rows(suite, "confidentiality_committed", "console.login")] == [("console", "ok")]

        home = await browser.get("/console/")
        shown = text_of(home.text)
        assert home.status_code == 200 and "console.login" in shown and "customer_service" in shown
        # Customer service looks customers up; it handles no requests and administers nothing.
        assert 'href="/console/customers"' in home.text
        assert 'href="/console/requests"' not in home.text and 'href="/console/admin"' not in home.text

        cookie = browser.http.cookies.get("lampo_session")
        out = await browser.post("/console/logout")
        assert out.status_code == 303 and out.headers["location"] == "/console/login"
        assert [tuple(r) for r in await audit_rows(suite, "logout", "console.login")] == [("console", "ok")]
        # The old cookie is worth nothing now: its staff token has ended.
        browser.http.cookies.set("lampo_session", cookie or "", domain="staff")
        assert (await browser.get("/console/")).status_code == 303


async def test_navigation_follows_the_roles(suite: Suite) -> None:
    for roles, shown, hidden in (
        (["data_protection_officer"], {"requests", "customers"}, {"admin"}),
        (["managing_director"], {"requests"}, {"customers", "admin"}),
        (["administrator"], {"admin"}, {"requests", "customers"}),
        (["auditor"], {"admin"}, {"requests", "customers"}),
    ):
        username = f"nav.{roles[0].replace('_', '.')}"
        secret = await new_user(suite, username, roles)
        async with Browser(suite) as browser:
            assert (await browser.login(username, secret)).status_code == 303
            home = (await browser.get("/console/")).text
            for section in shown:
                assert f'href="/console/{section}"' in home, (roles, section)
            for section in hidden:
                assert f'href="/console/{section}"' not in home, (roles, section)


async def test_a_form_without_its_csrf_token_is_refused(suite: Suite) -> None:
    secret = await new_user(suite, "console.csrf", ["auditor"])
    async with Browser(suite) as browser:
        refused = await browser.post("/console/login", {"username": "console.csrf", "password": secret}, csrf=False)
        assert refused.status_code == 403
        assert await audit_rows(suite, "login_succeeded", "console.csrf") == []  # nothing ran
        await browser.login("console.csrf", secret)
        assert (await browser.post("/console/logout", csrf=False)).status_code == 403
        assert (await browser.get("/console/")).status_code == 200  # still logged in


async def test_customer_data_waits_for_the_confidentiality_commitment(suite: Suite) -> None:
    secret = await new_user(suite, "console.uncommitted", ["data_protection_officer"])
    async with Browser(suite) as browser:
        r = await browser.login("console.uncommitted", secret, commit=False)
        assert r.headers["location"].startswith("/console/confidentiality")
        # The queue names requests of customers: first the commitment, then back to the queue.
        queue = await browser.get("/console/requests?status=all")
        assert queue.status_code == 303
        assert queue.headers["location"] == "/console/confidentiality?next=/console/requests%3Fstatus%3Dall"
        done = await browser.post("/console/confidentiality", {
            "text_version": suite.settings.confidentiality_text_version, "agree": "yes",
            "next": "/console/requests?status=all",
        })  # fmt: skip
        assert done.headers["location"] == "/console/requests?status=all"
        assert (await browser.get("/console/requests?status=all")).status_code == 200
