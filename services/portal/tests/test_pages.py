"""The privacy centre over HTTP, with the real registry, coordinator, PostgreSQL, Kafka and SMTP:
verification by a code sent to the address the register holds, requests of every kind going to
the coordinator only once verified, a subject seeing only their own, the status page and the
package, and the mail about a request."""

from __future__ import annotations

import io
import zipfile

from portal_support import Env, code_in, csrf_of, new_customer_number, post_form, text_of, verify_by_code

from lampo.contracts.catalog import REGISTRY_INBOUND
from lampo.portal import store
from lampo.testing import Producer, customer_upserted, eventually


async def seed(customer: str, n: int, email: str) -> None:
    async with Producer() as producer:
        await producer.send(REGISTRY_INBOUND, customer, customer_upserted(customer, n, email=email))


async def known_to_registry(env: Env, customer: str) -> None:
    async def known() -> bool:
        return await env.portal.registry_api.email_of(customer) is not None

    await eventually(known, timeout=30)


async def test_a_customer_verifies_by_code_asks_for_access_and_downloads_the_package(env: Env) -> None:
    customer, address = new_customer_number(), "aino.portaali@example.fi"
    await seed(customer, 961, address)
    await known_to_registry(env, customer)
    async with env.browser() as browser:
        # Not verified: the request form sends the visitor to verify first; nothing is submitted.
        refused = await browser.get("/requests/new/access")
        assert refused.status_code == 303 and refused.headers["location"].startswith("/verify?next=")

        sent = await post_form(browser, "/verify/email", {"customer_number": customer})
        assert sent.status_code == 303 and sent.headers["location"] == "/verify/code"
        [mail] = await env.wait_mail(address, 1)
        code = code_in(mail)
        assert customer not in text_of(mail)  # the code, its lifetime: nothing else about the customer
        code_page = await browser.get("/verify/code")
        assert address not in code_page.text and "aino" not in code_page.text  # the address is never shown

        wrong = "000000" if code != "000000" else "111111"
        missed = await browser.post("/verify/code", data={"code": wrong, "csrf_token": csrf_of(code_page)})
        assert missed.status_code == 422 and "4" in missed.text  # four tries left
        entered = await browser.post("/verify/code", data={"code": code, "csrf_token": csrf_of(code_page)})
        assert entered.status_code == 303 and entered.headers["location"] == "/requests"

        submitted = await post_form(browser, "/requests/new/access", {})
        assert submitted.status_code == 303, submitted.text[:500]
        request_id = submitted.headers["location"].rsplit("/", 1)[1]

        async def completed() -> bool:
            page = await browser.get(f"/requests/{request_id}")
            return page.status_code == 200 and "/package" in page.text

        await eventually(completed, timeout=60)
        status = await browser.get(f"/requests/{request_id}")
        assert request_id in status.text
        listed = await browser.get("/requests")
        assert f"/requests/{request_id}" in listed.text

        package = await browser.get(f"/requests/{request_id}/package")
        assert package.status_code == 200 and package.headers["content-type"] == "application/zip"
        assert "manifest.json" in zipfile.ZipFile(io.BytesIO(package.content)).namelist()

        # Once the package has expired (the coordinator's clock passed expires_at), the page says so.
        async with env.dsar_runtime.pool.acquire() as conn:
            await conn.execute(
                "UPDATE packages SET expires_at = now() - interval '1 minute' WHERE request_id = $1", request_id
            )
        gone = await browser.get(f"/requests/{request_id}/package")
        assert gone.status_code == 410 and "vanhentunut tai hävitetty" in gone.text
        assert "/package" not in (await browser.get(f"/requests/{request_id}")).text

    # The coordinator recorded the request as the portal's, verified by the e-mail code.
    async with env.as_staff() as staff:
        view = (await staff.get(f"/v1/requests/{request_id}")).json()
    assert view["channel"] == "portal" and view["kind"] == "access"
    # Mail: the code, then received and completed, in Finnish (the language it was asked in).
    mails = await env.wait_mail(address, 3)
    subjects = [str(m["subject"]) for m in mails]
    assert len(mails) == 3, subjects
    assert all(
        request_id in text_of(m) and f"http://portal.test/requests/{request_id}" in text_of(m) for m in mails[1:]
    )
    assert all(customer not in text_of(m) for m in mails)
    assert mails[1]["Content-Language"] == "fi"


async def test_another_subject_sees_neither_the_request_nor_its_package(env: Env) -> None:
    owner, other = new_customer_number(), new_customer_number()
    async with env.browser() as first, env.browser() as second:
        await post_form(first, "/verify/strong", {"customer_number": owner})
        submitted = await post_form(first, "/requests/new/restriction", {"action": "place"})
        assert submitted.status_code == 303, submitted.text[:500]
        request_id = submitted.headers["location"].rsplit("/", 1)[1]
        assert (await first.get(f"/requests/{request_id}")).status_code == 200

        await post_form(second, "/verify/strong", {"customer_number": other})
        assert (await second.get(f"/requests/{request_id}")).status_code == 404
        assert (await second.get(f"/requests/{request_id}/package")).status_code == 404
        assert request_id not in (await second.get("/requests")).text


async def test_an_unknown_number_gets_the_same_answer_no_mail_and_a_code_that_never_opens(env: Env) -> None:
    unknown = new_customer_number()
    before = len(list(env.mail_dir.glob("*.eml")))
    async with env.browser() as browser:
        sent = await post_form(browser, "/verify/email", {"customer_number": unknown})
        assert sent.status_code == 303 and sent.headers["location"] == "/verify/code"
        page = await browser.get("/verify/code")
        for attempt in range(5):
            tried = await browser.post("/verify/code", data={"code": f"{attempt:06d}", "csrf_token": csrf_of(page)})
            assert tried.status_code == 422
        assert "/verify/email" in tried.text  # locked: ask for a new code
        assert (await browser.get("/requests")).status_code == 303  # still not verified
    await env.portal.codes.drain()
    assert len(list(env.mail_dir.glob("*.eml"))) == before


async def test_five_wrong_tries_lock_the_code_even_for_the_right_one(env: Env) -> None:
    customer, address = new_customer_number(), "lukko.portaali@example.fi"
    await seed(customer, 962, address)
    await known_to_registry(env, customer)
    async with env.browser() as browser:
        await post_form(browser, "/verify/email", {"customer_number": customer})
        [mail] = await env.wait_mail(address, 1)
        code = code_in(mail)
        page = await browser.get("/verify/code")
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(5):
            await browser.post("/verify/code", data={"code": wrong, "csrf_token": csrf_of(page)})
        # the challenge is gone from the session; even the right code no longer opens it
        challenge = await env.portal.codes.check(await last_challenge(env, customer), code)
        assert challenge.outcome == "locked"
        assert (await browser.get("/requests")).status_code == 303


async def last_challenge(env: Env, customer: str) -> str:
    async with env.portal.runtime.pool.acquire() as conn:
        return str(await conn.fetchval(
            "SELECT challenge_id FROM codes WHERE customer_number = $1 ORDER BY created_at DESC LIMIT 1", customer
        ))  # fmt: skip


async def test_every_kind_goes_to_the_coordinator_with_channel_portal_and_what_it_needs(env: Env) -> None:
    customer = new_customer_number()
    forms = {
        "access": {},
        "portability": {},
        "rectification": {"email": "uusi.osoite@example.fi", "last_name": "Korjattu"},
        "erasure": {"confirm": "yes"},
        "objection": {"scope": "direct_marketing"},
        "restriction": {"action": "place"},
    }
    async with env.browser() as browser, env.as_staff() as staff:
        await post_form(browser, "/verify/strong", {"customer_number": customer})
        for kind, form in forms.items():
            submitted = await post_form(browser, f"/requests/new/{kind}", form)
            assert submitted.status_code == 303, (kind, submitted.text[:800])
            request_id = submitted.headers["location"].rsplit("/", 1)[1]
            view = (await staff.get(f"/v1/requests/{request_id}")).json()
            assert (view["kind"], view["channel"]) == (kind, "portal")
            if kind == "objection":
                assert view["scope"] == "direct_marketing"
        lift = await post_form(browser, "/requests/new/restriction", {"action": "lift"})
        view = (await staff.get(f"/v1/requests/{lift.headers['location'].rsplit('/', 1)[1]}")).json()
        assert view["lift"] is True
    async with env.portal.runtime.pool.acquire() as conn:
        mine = await store.requests_of(conn, customer)
    assert sorted(r.kind for r in mine) == sorted([*forms, "restriction"])
    assert {r.verified_by for r in mine} == {"strong_electronic"}


async def test_form_errors_are_named_next_to_the_field_in_finnish_and_in_english(env: Env) -> None:
    async with env.browser() as browser:
        await post_form(browser, "/verify/strong", {"customer_number": new_customer_number()})
        wrong = await post_form(
            browser, "/requests/new/rectification", {"email": "not-an-address", "postal_code": "12"}
        )
        assert wrong.status_code == 422
        assert (
            'href="#email"' in wrong.text and 'id="email-error"' in wrong.text and 'aria-invalid="true"' in wrong.text
        )
        assert "Anna sähköpostiosoite" in wrong.text and "not-an-address" in wrong.text  # kept in the field only
        await browser.get("/lang/en?next=/")
        again = await post_form(browser, "/requests/new/objection", {})
        assert again.status_code == 422 and "Choose what you object to." in again.text
        nothing = await post_form(browser, "/requests/new/erasure", {})
        assert nothing.status_code == 422 and "Tick the box" in nothing.text


async def test_an_extension_and_its_reason_reach_the_subject_by_mail_and_on_the_status_page(env: Env) -> None:
    customer, address = new_customer_number(), "pidennys.portaali@example.fi"
    await seed(customer, 963, address)
    await known_to_registry(env, customer)
    async with env.browser() as browser, env.as_staff() as staff:
        await verify_by_code(env, browser, customer, address)
        await browser.get("/lang/en?next=/")
        submitted = await post_form(browser, "/requests/new/erasure", {"confirm": "yes"})
        request_id = submitted.headers["location"].rsplit("/", 1)[1]

        async def waiting() -> bool:
            return (await staff.get(f"/v1/requests/{request_id}")).json()["status"] == "awaiting_approval"

        await eventually(waiting, timeout=30)
        extended = await staff.post(
            f"/v1/requests/{request_id}/extend", json={"reason": "Records in three archives need to be checked."}
        )
        assert extended.status_code == 200, extended.text
        page = await browser.get(f"/requests/{request_id}")
        assert "Records in three archives need to be checked." in page.text and "Time extended" in page.text
    mails = await env.wait_mail(address, 3)  # the code, received, extended
    extension = [m for m in mails if "more time" in str(m["subject"])]
    assert extension, [str(m["subject"]) for m in mails]
    assert "Records in three archives need to be checked." in text_of(extension[0])
    assert extension[0]["Content-Language"] == "en"
    async with env.portal.runtime.pool.acquire() as conn:
        sent = await store.mail_of(conn, request_id)
    assert [m["what"] for m in sent] == ["received", "extended"]


async def test_logout_ends_the_verification(env: Env) -> None:
    async with env.browser() as browser:
        await post_form(browser, "/verify/strong", {"customer_number": new_customer_number()})
        assert (await browser.get("/requests")).status_code == 200
        out = await post_form(browser, "/logout", {}, form_page="/requests")
        assert out.status_code == 303
        assert (await browser.get("/requests")).status_code == 303


async def test_a_form_without_its_csrf_token_is_refused(env: Env) -> None:
    async with env.browser() as browser:
        refused = await browser.post("/verify/strong", data={"customer_number": new_customer_number()})
        assert refused.status_code == 403
        assert (await browser.get("/requests")).status_code == 303


async def test_a_subject_is_told_before_their_restriction_is_lifted(env: Env) -> None:
    customer, address = new_customer_number(), "rajoitus.portaali@example.fi"
    await seed(customer, 964, address)
    await known_to_registry(env, customer)
    async with env.browser() as browser, env.as_staff() as staff:
        await verify_by_code(env, browser, customer, address)
        placed = await post_form(browser, "/requests/new/restriction", {"action": "place"})
        placed_id = placed.headers["location"].rsplit("/", 1)[1]

        async def finished(request_id: str) -> bool:
            status = (await staff.get(f"/v1/requests/{request_id}")).json()["status"]
            return status in ("completed", "completed_with_retention")

        await eventually(lambda: finished(placed_id), timeout=60)
        lifted = await post_form(browser, "/requests/new/restriction", {"action": "lift"})
        lift_id = lifted.headers["location"].rsplit("/", 1)[1]
        await eventually(lambda: finished(lift_id), timeout=60)

    async def told() -> bool:
        return any("rajoitus poistetaan" in str(m["subject"]) for m in env.mail_to(address))

    await eventually(told, timeout=60)
    [notice] = [m for m in env.mail_to(address) if "rajoitus poistetaan" in str(m["subject"])]
    assert lift_id in text_of(notice) and customer not in text_of(notice)

    async def all_sent() -> bool:
        async with env.portal.runtime.pool.acquire() as conn:
            sent = [m["what"] for m in await store.mail_of(conn, lift_id) if m["sent_at"]]
        return sorted(sent) == ["completed", "lift_notice", "received"]  # one mail per event

    await eventually(all_sent, timeout=30)
