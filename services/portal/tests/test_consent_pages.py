"""The consent pages against the real consent service (its ASGI app in this process, on the real
broker and database): a verified subject sees each purpose, gives and withdraws consent through
the forms (CSRF-protected), the withdrawal holds when the page says so, and the receipts
download as JSON; nobody else's receipt can be fetched."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from pydantic import SecretStr

from lampo.consent.app import build as build_consent
from lampo.consent.cli import verdict
from lampo.consent.settings import ConsentSettings
from lampo.contracts.catalog import CONSENT_INBOUND, PRIVACY_TASKS
from lampo.crypto import new_master_key
from lampo.portal.app import build as build_portal
from lampo.portal.app import optional_routers, page_mounts
from lampo.portal.session import set_subject
from lampo.portal.settings import PortalSettings
from lampo.service import Runtime
from lampo.testing import drop_database, fast_forward_group, running, unique
from lampo.web import Site

TOKEN = secrets.token_urlsafe(16)


@pytest.fixture(scope="module")
async def consent() -> AsyncIterator[Runtime]:
    settings = ConsentSettings(
        database=unique("test_portal_consent"), consumer_group=unique("test-portal-consent"),
        master_key=new_master_key(), api_clients={"portal": SecretStr(TOKEN)}, event_source=unique("urn:test:consent"),
    )  # fmt: skip
    await fast_forward_group(settings.consumer_group or "", [CONSENT_INBOUND, PRIVACY_TASKS])
    runtime = build_consent(settings)
    async with running(runtime.app):
        yield runtime
    await drop_database(settings.database or "")


def pages(consent: Runtime) -> FastAPI:
    """The portal's pages with the optional routers, as lampo.portal.app mounts them, the consent
    service behind the client, and a way for the test to be a verified subject."""
    app = FastAPI()
    Site(package="lampo.portal").install(app, session_key=b"s" * 32, secure=False)
    for router in optional_routers():
        app.include_router(router)
    app.state.settings = PortalSettings(api_token=SecretStr(TOKEN))
    app.state.consent_transport = httpx.ASGITransport(app=consent.app)

    @app.get("/test-verified/{customer_number}")
    async def pretend(customer_number: str, request: Request) -> PlainTextResponse:
        set_subject(request, customer_number, "email_code", datetime.now(UTC))
        return PlainTextResponse("ok")

    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portal")


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def state_of(html: str, purpose: str) -> str:
    section = html.split(f'id="purpose-{purpose}"', 1)[1].split("</section>", 1)[0]
    found = re.search(r'data-state="([a-z]+)"', section)
    assert found
    return found.group(1)


async def post_form(http: httpx.AsyncClient, path: str, page: str, **extra: Any) -> httpx.Response:
    return await http.post(path, data={"csrf_token": csrf(page), **extra})


async def test_the_portal_serves_these_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    paths = {getattr(r, "path", "") for router in optional_routers() for r in router.routes}
    assert {"/consents", "/consents/{purpose}/{action}", "/consents/receipts/{receipt_id}", "/privacy-statement",
            "/privacy-statement.json"} <= paths  # fmt: skip
    monkeypatch.setenv("LAMPO_WEB_SESSION_KEY", secrets.token_hex(32))
    portal = build_portal(PortalSettings(master_key=SecretStr(new_master_key())))
    mounted = {prefix for prefix, _ in page_mounts(portal.pages)[0]}  # what the running service answers
    assert {"/consents", "/privacy-statement", "/privacy-statement.json", "/verify"} <= mounted


async def test_consent_is_given_and_withdrawn_through_the_page(consent: Runtime) -> None:
    customer = str(uuid.uuid4().int % 10**9)
    database_url = consent.settings.database_url
    async with client(pages(consent)) as http:
        assert (await http.get("/consents")).headers["location"] == "/verify?next=/consents"
        await http.get(f"/test-verified/{customer}")

        page = await http.get("/consents")
        assert page.status_code == 200 and "Profilointi" in page.text  # Finnish first
        assert state_of(page.text, "profiling") == "none"
        assert 'action="/consents/profiling/grant"' in page.text

        given = await post_form(http, "/consents/profiling/grant", page.text)
        assert (given.status_code, given.headers["location"]) == (303, "/consents#purpose-profiling")
        assert (await verdict(database_url, customer, "profiling")).allowed
        page = await http.get("/consents")
        assert state_of(page.text, "profiling") == "granted"
        assert "Suostumus (Profilointi) on annettu" in page.text and "tietosuojakeskuksessa" in page.text

        withdrawn = await post_form(http, "/consents/profiling/withdraw", page.text)
        assert withdrawn.status_code == 303
        # in force the moment the page answers
        answer = await verdict(database_url, customer, "profiling")
        assert not answer.allowed and "withdrawn" in answer.reason
        page = await http.get("/consents")
        assert state_of(page.text, "profiling") == "withdrawn"
        assert "Peruminen tuli voimaan heti" in page.text
        assert 'action="/consents/profiling/grant"' in page.text  # can be given again

        english = await http.get("/lang/en?next=/consents", follow_redirects=True)
        assert "Withdrawn" in english.text and "Download the receipt" in english.text


async def test_the_receipts_download_as_json_for_their_subject_only(consent: Runtime) -> None:
    customer, other = (str(uuid.uuid4().int % 10**9) for _ in range(2))
    app = pages(consent)
    async with client(app) as http:
        await http.get(f"/test-verified/{customer}")
        page = await http.get("/consents")
        await post_form(http, "/consents/direct_marketing/grant", page.text)
        page = await http.get("/consents")
        links = re.findall(r'href="/consents/receipts/([0-9a-f-]{36})\.json"', page.text)
        assert links, "no receipt link"
        receipt_id = links[0]

        download = await http.get(f"/consents/receipts/{receipt_id}.json")
        assert download.status_code == 200 and download.headers["content-type"] == "application/json"
        assert download.headers["content-disposition"] == f'attachment; filename="consent-receipt-{receipt_id}.json"'
        body = download.json()
        assert body["piiPrincipalId"] == customer and body["collectionMethod"] == "portal"
        assert body["services"][0]["purposes"][0]["purpose"] == "direct_marketing"
        assert (await http.get("/consents/receipts/not-a-receipt.json")).status_code == 404

    async with client(app) as someone_else:
        await someone_else.get(f"/test-verified/{other}")
        assert (await someone_else.get(f"/consents/receipts/{receipt_id}.json")).status_code == 404


async def test_a_form_without_its_csrf_token_changes_nothing(consent: Runtime) -> None:
    customer = str(uuid.uuid4().int % 10**9)
    async with client(pages(consent)) as http:
        await http.get(f"/test-verified/{customer}")
        refused = await http.post("/consents/profiling/grant", data={})
        assert refused.status_code == 403
        forged = await http.post("/consents/profiling/grant", data={"csrf_token": "x" * 40})
        assert forged.status_code == 403
        assert state_of((await http.get("/consents")).text, "profiling") == "none"
        page = await http.get("/consents")
        assert (await post_form(http, "/consents/astrology/grant", page.text)).status_code == 404


async def test_without_the_consent_service_the_page_says_so(consent: Runtime) -> None:
    app = pages(consent)
    app.state.consent_transport = httpx.MockTransport(lambda request: httpx.Response(503))
    async with client(app) as http:
        await http.get("/test-verified/123456")
        page = await http.get("/consents")
        assert page.status_code == 503 and "Suostumuksiasi ei voida juuri nyt näyttää" in page.text
