"""The privacy statement page, open to everyone, rendered from the data the system runs on: the
shipped data map and roles give every section, and a changed data map (LAMPO_DATAMAP_FILE)
changes the page at its next request."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from lampo.controller import controller
from lampo.portal.app import optional_routers
from lampo.portal.settings import PortalSettings
from lampo.portal.statement_pages import StatementSettings
from lampo.web import Site


def pages(consent: httpx.AsyncBaseTransport) -> FastAPI:
    app = FastAPI()
    Site(package="lampo.portal").install(app, session_key=b"s" * 32, secure=False)
    for router in optional_routers():
        app.include_router(router)
    app.state.settings = PortalSettings(api_token=SecretStr("t"))
    app.state.consent_transport = consent
    return app


def consent_purposes(request: httpx.Request) -> httpx.Response:
    """The consent service's answer to GET /v1/purposes (its own test covers the route)."""
    assert request.url.path == "/v1/purposes"
    return httpx.Response(200, json={"purposes": [
        {"purpose": "profiling", "description": "Analysis of customer data for profiling", "consent_text_version": "p-1"},
    ]})  # fmt: skip


async def get(app: FastAPI, path: str, lang: str = "fi") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portal") as http:
        http.cookies.set("lampo_lang", lang)
        return await http.get(path)


@pytest.fixture
def datamap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the shipped data map the page is built from (LAMPO_DATAMAP_FILE)."""
    copy = tmp_path / "datamap.toml"
    copy.write_text(StatementSettings().datamap_file.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setenv("LAMPO_DATAMAP_FILE", str(copy))
    yield copy


async def test_the_statement_is_open_to_everyone_and_names_what_the_system_holds() -> None:
    page = await get(pages(httpx.MockTransport(consent_purposes)), "/privacy-statement")
    assert page.status_code == 200  # no verification asked
    html = page.text
    assert "<h1>Tietosuojaseloste</h1>" in html
    assert controller().name in html and controller().business_id in html and controller().email in html
    for label in ("Perustiedot", "Yhteystiedot", "Laskutus", "Kulutus", "Muut suostumuksellasi annetut tiedot"):
        assert label in html
    assert "3 vuotta asiakassuhteen päättymisestä" in html  # basic-after-relationship, in Finnish
    assert 'data-rule="basic-after-relationship"' in html
    assert "Analysis of customer data for profiling" in html  # from the consent service
    assert "Tietoja ei koskaan siirretä" in html
    assert "enintään 72 tuntia" in html  # the dead-letter topics' retention
    assert "Asiakaspalvelu" in html and "Laskuttaja" in html


def change(datamap: Path) -> None:
    """Basic data kept 5 years instead of 3, and a new recipient of contact details."""
    text = datamap.read_text(encoding="utf-8")
    text = text.replace("period = { years = 3 }", "period = { years = 5 }", 1)
    text = text.replace('{ name = "Example Print & Mail Oy (printing and mailing of invoices)", country = "FI" },',
                        '{ name = "Example Print & Mail Oy (printing and mailing of invoices)", country = "FI" },\n'
                        '  { name = "Example Letters AB", country = "SE" },', 1)  # fmt: skip
    tomllib.loads(text)  # still a valid file
    datamap.write_text(text, encoding="utf-8")


async def test_a_changed_data_map_changes_the_page(datamap: Path) -> None:
    app = pages(httpx.MockTransport(consent_purposes))
    before = (await get(app, "/privacy-statement", "en")).text
    assert "3 years after the customer relationship has ended" in before

    change(datamap)
    after = (await get(app, "/privacy-statement", "en")).text
    assert "5 years after the customer relationship has ended" in after
    assert "Example Letters AB" in after and "Example Letters AB" not in before
    data = (await get(app, "/privacy-statement.json")).json()
    assert data["categories"][0]["retention"][0]["period"]["years"] == 5


async def test_without_the_consent_service_the_page_says_what_is_missing() -> None:
    page = await get(pages(httpx.MockTransport(lambda r: httpx.Response(503))), "/privacy-statement", "en")
    assert page.status_code == 200
    assert "The consent purposes could not be read" in page.text
