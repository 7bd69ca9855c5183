"""The status page as the subject reads it: what each store did, what was kept and why (the
legal basis, until when), the deadline and its extension with the reason, in both languages.
Rendered from a coordinator view of the shape ``GET /v1/requests/{id}`` answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from lampo.portal import labels
from lampo.portal.pages import _package_state
from lampo.web import Site

NOW = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)
VIEW: dict[str, Any] = {
    "request_id": "req-erasure-1",
    "kind": "erasure",
    "status": "completed_with_retention",
    "channel": "portal",
    "received_at": "2026-11-28T09:58:00+00:00",
    "due_at": "2027-02-28T09:58:00+00:00",
    "extended": {"at": "2026-12-01T10:00:00+00:00", "by": "dpo", "reason": "Records in three archives."},
    "rejection": None,
    "completed_at": "2026-12-19T08:00:00+00:00",
    "scope": None,
    "lift_notice_at": None,
    "package": None,
    "participants": [
        {"participant": "registry", "status": "done", "current": True, "erased": {"contact": 1, "basic": 1},
         "effects": [], "retained": []},
        {"participant": "billing", "status": "done", "current": True, "erased": {"billing": 2}, "effects": [],
         "retained": [{"category": "billing", "items": 6, "legal_basis": "Accounting Act 2:10", "until": "2032-12-31"}]},
        {"participant": "recordings", "status": "done", "current": True, "erased": {},
         "effects": [{"action": "not_altered", "category": "customer_relationship", "items": 3,
                      "legal_basis": "a court's legal hold R 26/1234", "at": None}], "retained": []},
        {"participant": "consent", "status": "failed", "current": False, "erased": {}, "effects": [], "retained": []},
    ],
}  # fmt: skip


def status_app() -> FastAPI:
    app = FastAPI()
    site = Site(package="lampo.portal")
    site.install(app, session_key=b"s" * 32, secure=False)

    @app.get("/status")
    async def status(request: Request) -> HTMLResponse:
        current = [t for t in VIEW["participants"] if t["current"]]
        return site.render(request, "status.html", view=VIEW, participants=current, labels=labels, subject=None,
                           package=_package_state(VIEW, NOW))  # fmt: skip

    return app


async def page(lang: str) -> str:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=status_app()), base_url="http://portal") as http:
        await http.get(f"/lang/{lang}?next=/status")
        answer = await http.get("/status")
        assert answer.status_code == 200
        return answer.text


async def test_the_subject_reads_what_was_done_what_was_kept_and_why() -> None:
    text = await page("en")
    assert "Completed, some data kept" in text
    assert "Customer register" in text and "Invoices and payments" in text and "Call recordings" in text
    assert "contact information, 1 item" in text
    assert "billing information, 6 items: Accounting Act 2:10" in text and "(kept until December 31, 2032)" in text
    assert "Not changed" in text and "Why: a court&#39;s legal hold R 26/1234" in text
    assert "Records in three archives." in text and "February 28, 2027" in text
    assert "Consents and objections" not in text  # a superseded task is not the subject's to read


async def test_the_same_page_in_finnish() -> None:
    text = await page("fi")
    assert "Valmis, osa tiedoista säilytetään" in text
    assert "laskutustiedot, 6 kpl: Accounting Act 2:10" in text and "(säilytetään 31. joulukuuta 2032 asti)" in text
    assert "Syy: Records in three archives." in text and "Aikaa pidennetty" in text


def test_a_package_is_ready_until_it_expires_or_is_destroyed() -> None:
    ready = {"package": {"expires_at": "2026-12-21T00:00:00+00:00", "destroyed": None}}
    assert _package_state(ready, NOW) == "ready"
    assert _package_state({"package": {"expires_at": "2026-12-20T00:00:00+00:00", "destroyed": None}}, NOW) == "gone"
    assert _package_state({"package": {**ready["package"], "destroyed": {"reason": "erased"}}}, NOW) == "gone"
    assert _package_state({"package": None}, NOW) is None
