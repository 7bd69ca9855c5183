"""The console's request pages (issue 18) on the real coordinator and registry: the queue by
deadline with its marks, a request's page with its participants and trace, approval by the
managing director only (no button for others, and a forged POST is refused and audited), the
other decisions, and a request registered from a signed letter."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from console_support import Browser, text_of
from staff_support import Suite, password

from lampo.testing import eventually


async def user(suite: Suite, role: str) -> tuple[str, str]:
    if role not in suite.users:
        username, secret = f"{role.replace('_', '.')}.user", password()
        await suite.staff.access.create_user("test", username, secret, [role])
        suite.users[role] = (username, secret)
    return suite.users[role]


async def erasure_waiting(suite: Suite, dpo: Browser) -> str:
    """An erasure registered from a signed letter through the console's form, once it waits for approval."""
    r = await dpo.post("/console/requests/new", {
        "kind": "erasure", "customer_number": suite.customer, "received_on": "2026-11-27",
        "method": "signed_letter", "verified_by": "Asiakaspalvelu / posti",
    })  # fmt: skip
    assert r.status_code == 303, r.text
    request_id = r.headers["location"].rsplit("/", 1)[1]
    await eventually(lambda: state_of(suite, request_id, "awaiting_approval"), timeout=30)
    return request_id


async def state_of(suite: Suite, request_id: str, wanted: str) -> bool:
    status, answer = await _view(suite, request_id)
    return status == 200 and answer["status"] == wanted


async def _view(suite: Suite, request_id: str) -> tuple[int, Any]:
    desk = suite.staff.runtime.app._mounts[1][1].state.console.desk  # the console's own desk
    return await desk.call("GET", f"/v1/requests/{request_id}")


async def audit(suite: Suite, action: str, request_id: str) -> list[tuple[str, str, str]]:
    async with suite.staff.runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT actor, interface, outcome FROM audit_log WHERE action = $1 AND strpos(detail::text, $2) > 0"
            " ORDER BY seq",
            action,
            request_id,
        )
    return [tuple(r) for r in rows]


async def test_the_managing_director_approves_in_the_console_and_the_dpo_cannot(suite: Suite) -> None:
    await user(suite, "managing_director")
    async with Browser(suite) as dpo, Browser(suite) as md:
        await dpo.login_as("data_protection_officer")
        await md.login_as("managing_director")
        request_id = await erasure_waiting(suite, dpo)
        page = f"/console/requests/{request_id}"

        queue = await dpo.get("/console/requests")
        assert queue.status_code == 200 and request_id in queue.text
        assert "Odottaa hyväksyntää" in text_of(queue.text)  # its state, in Finnish

        seen_by_dpo = await dpo.get(page)
        assert seen_by_dpo.status_code == 200
        assert f"{page}/approve" not in seen_by_dpo.text  # no button for a role that cannot approve
        assert "toimitusjohtajan hyväksyntää" in seen_by_dpo.text
        forged = await dpo.post(f"{page}/approve")
        assert forged.status_code == 403 and "Ei sallittu" in forged.text
        dpo_name = suite.users["data_protection_officer"][0]
        assert ("console_refused" in await _actions(suite, dpo_name))
        assert (await _view(suite, request_id))[1]["status"] == "awaiting_approval"

        seen_by_md = await md.get(page)
        assert f'action="{page}/approve"' in seen_by_md.text
        approved = await md.post(f"{page}/approve")
        assert approved.status_code == 303 and approved.headers["location"] == page
        md_name = suite.users["managing_director"][0]
        assert await audit(suite, "dsar_approved", request_id) == [(md_name, "console", "ok")]

        await eventually(lambda: state_of(suite, request_id, "completed"), timeout=60)
        done = await md.get(page)
        shown = text_of(done.text)
        assert "Valmis" in shown and md_name in shown
        assert re.search(r"registry\s*</th>\s*<td><span class=\"status status--ok\">valmis", done.text), done.text
        trace_id = (await _view(suite, request_id))[1]["trace_id"]
        assert f'href="{suite.settings.tracing_ui}/traces/{trace_id}"' in done.text
        assert "data-progress=" not in done.text  # finished: the page no longer refreshes
        assert f"{page}/cancel" not in done.text


def row_of(html: str, request_id: str) -> str:
    """The queue's table row of ``request_id``."""
    at = html.index(f'href="/console/requests/{request_id}"')
    return html[html.rindex("<tr>", 0, at) : html.index("</tr>", at)]


async def _actions(suite: Suite, actor: str) -> list[str]:
    async with suite.staff.runtime.pool.acquire() as conn:
        return [r["action"] for r in await conn.fetch("SELECT action FROM audit_log WHERE actor = $1", actor)]


async def test_a_letter_is_registered_with_its_verification_and_can_be_extended_and_cancelled(suite: Suite) -> None:
    async with Browser(suite) as dpo:
        await dpo.login_as("data_protection_officer")
        form = await dpo.get("/console/requests/new")
        assert form.status_code == 200 and 'name="method" value="signed_letter"' in form.text
        # A rectification without a corrected value is refused, naming the field.
        refused = await dpo.post("/console/requests/new", {
            "kind": "rectification", "customer_number": suite.customer, "received_on": "2026-11-27",
            "method": "in_person", "verified_by": "Tiskillä",
        })  # fmt: skip
        assert refused.status_code == 422 and "corrections:" in refused.text
        r = await dpo.post("/console/requests/new", {
            "kind": "rectification", "customer_number": suite.customer, "received_on": "2026-11-27",
            "method": "in_person", "verified_by": "Tiskillä", "city": "Muurame",
        })  # fmt: skip
        assert r.status_code == 303, r.text
        request_id = r.headers["location"].rsplit("/", 1)[1]
        async with suite.staff.runtime.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT actor, interface, customer_number, detail FROM audit_log WHERE action = 'dsar_submitted'"
                " AND strpos(detail::text, $1) > 0",
                request_id,
            )
        assert row["interface"] == "console" and row["customer_number"] == suite.customer
        detail = json.loads(row["detail"]) if isinstance(row["detail"], str) else dict(row["detail"])
        assert (detail["verified_by"], detail["method"]) == ("Tiskillä", "in_person")
        view = (await _view(suite, request_id))[1]
        assert view["channel"] == "staff" and view["kind"] == "rectification"

        # An erasure waits for approval: it stays unanswered while it is extended and cancelled.
        request_id = await erasure_waiting(suite, dpo)
        page = f"/console/requests/{request_id}"
        empty = await dpo.post(f"{page}/extend", {"reason": "  "})
        assert empty.status_code == 422
        extended = await dpo.post(f"{page}/extend", {"reason": "Tiedot kolmesta järjestelmästä"})
        assert extended.status_code == 303
        shown = await dpo.get(page)
        assert "Tiedot kolmesta järjestelmästä" in shown.text and f"{page}/extend" not in shown.text
        assert "Jatkettu" in row_of((await dpo.get("/console/requests?status=all")).text, request_id)
        again = await dpo.post(f"{page}/extend", {"reason": "again"})
        assert again.status_code == 409  # once only: the coordinator says no, the page says so

        cancelled = await dpo.post(f"{page}/cancel")
        assert cancelled.status_code == 303
        assert (await _view(suite, request_id))[1]["status"] == "cancelled"
        assert "Peruttu" in text_of((await dpo.get(page)).text)
        assert [a[1] for a in await audit(suite, "dsar_extend", request_id)] == ["console", "console"]


async def test_the_queue_needs_its_role_and_marks_overdue_requests(suite: Suite) -> None:
    async with Browser(suite) as clerk:
        await clerk.login_as("customer_service")
        refused = await clerk.get("/console/requests")
        assert refused.status_code == 403
        assert "console_refused" in await _actions(suite, suite.users["customer_service"][0])
    async with Browser(suite) as dpo:
        await dpo.login_as("data_protection_officer")
        # A letter received five weeks ago is already past its one-month deadline.
        r = await dpo.post("/console/requests/new", {
            "kind": "access", "customer_number": str(uuid.uuid4().int % 10**9), "received_on": "2026-10-20",
            "method": "signed_letter", "verified_by": "Posti",
        })  # fmt: skip
        assert r.status_code == 303
        request_id = r.headers["location"].rsplit("/", 1)[1]
        queue = (await dpo.get("/console/requests?status=all")).text
        assert "Myöhässä" in row_of(queue, request_id) and "Jatkettu" not in row_of(queue, request_id)
        # The oldest deadline first: this request comes before every other one.
        first = re.search(r'href="/console/requests/([^"/]+)"', queue[queue.index("<tbody>") :])
        assert first and first.group(1) == request_id
        bad = await dpo.get("/console/requests?status=sleeping")
        assert bad.status_code == 422


async def test_the_director_denies_with_a_reason_and_a_refresh_is_not_a_new_view(suite: Suite) -> None:
    await user(suite, "managing_director")
    async with Browser(suite) as dpo, Browser(suite) as md:
        await dpo.login_as("data_protection_officer")
        await md.login_as("managing_director")
        request_id = await erasure_waiting(suite, dpo)
        page = f"/console/requests/{request_id}"

        shown = await md.get(page)
        assert f'data-progress="{page}/progress"' in shown.text  # it follows the request while it waits
        views = len(await audit(suite, "dsar_viewed", request_id))
        fragment = await md.get(f"{page}/progress")
        assert fragment.status_code == 200 and fragment.headers["x-request-status"] == "awaiting_approval"
        assert "<html" not in fragment.text  # the section alone
        assert len(await audit(suite, "dsar_viewed", request_id)) == views  # a refresh is not a new view

        assert (await md.post(f"{page}/deny", {"reason": ""})).status_code == 422
        assert (await dpo.post(f"{page}/deny", {"reason": "Allekirjoitus ei täsmää"})).status_code == 403
        denied = await md.post(f"{page}/deny", {"reason": "Allekirjoitus ei täsmää"})
        assert denied.status_code == 303
        await eventually(lambda: state_of(suite, request_id, "rejected"), timeout=30)
        md_name = suite.users["managing_director"][0]
        assert await audit(suite, "dsar_denied", request_id) == [(md_name, "console", "ok")]
        after = await md.get(page)
        assert "Hylätty" in text_of(after.text) and f"{page}/approve" not in after.text
        # Nothing failed: nothing to retry. The coordinator's refusal is the page's answer, audited.
        retried = await dpo.post(f"{page}/retry", {"participant": "registry"})
        assert retried.status_code == 409
        assert [a[2] for a in await audit(suite, "dsar_retry", request_id)] == ["refused_409"]


async def test_the_json_api_lists_the_queue_for_the_dpo_only(suite: Suite) -> None:
    dpo = await suite.as_role("data_protection_officer")
    page = await suite.client.get("/v1/dsar/requests", params={"status": "rejected", "limit": 5}, headers=dpo)
    assert page.status_code == 200, page.text
    assert all(r["status"] == "rejected" for r in page.json()["requests"])
    assert set(page.json()) == {"requests", "offset", "next_offset"}
    refused = await suite.client.get("/v1/dsar/requests", headers=await suite.as_role("customer_service"))
    assert refused.status_code == 403
    unknown = await suite.client.get("/v1/dsar/requests", params={"status": "sleeping"}, headers=dpo)
    assert unknown.status_code == 422 and unknown.json()["error"]["detail"].startswith("status:")
