"""The verified subject in the session, and the redirect of a visitor who has not verified."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from lampo.portal.session import Verified, set_subject, subject_of
from lampo.web import Site

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def test_a_session_holds_a_subject_only_with_every_key_and_a_recent_verification() -> None:
    fresh = {"customer_number": "100234", "verified_by": "email_code", "verified_at": NOW.isoformat()}
    subject = subject_of(fresh, NOW + timedelta(minutes=5), ttl_s=1800)
    assert subject is not None and subject.customer_number == "100234" and subject.verified_by == "email_code"
    assert subject_of(fresh, NOW + timedelta(minutes=31), ttl_s=1800) is None  # too long ago
    assert subject_of({**fresh, "verified_by": "password"}, NOW, ttl_s=1800) is None
    assert subject_of({k: v for k, v in fresh.items() if k != "verified_at"}, NOW, ttl_s=1800) is None
    assert subject_of({}, NOW) is None


async def test_an_unverified_visitor_is_sent_to_the_verification_page_and_back() -> None:
    app = FastAPI()
    Site(package="lampo.portal").install(app, session_key=b"k" * 32, secure=False)

    @app.get("/mine")
    async def mine(subject: Verified) -> PlainTextResponse:
        return PlainTextResponse(subject.customer_number)

    @app.get("/pretend-verified")
    async def pretend(request: Request) -> PlainTextResponse:
        set_subject(request, "100234", "strong_electronic", datetime.now(UTC))
        return PlainTextResponse("ok")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portal") as client:
        refused = await client.get("/mine?x=1")
        assert refused.status_code == 303
        assert refused.headers["location"] == "/verify?next=/mine%3Fx%3D1"
        assert (await client.get("/pretend-verified")).status_code == 200
        mine_now = await client.get("/mine")
        assert mine_now.status_code == 200 and mine_now.text == "100234"
