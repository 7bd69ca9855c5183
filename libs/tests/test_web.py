"""lampo.web: the pages' frame, language, session cookie, CSRF and headers, through a real ASGI
app and HTTP client (the browser-level checks are in tests/browser/)."""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.testclient import TestClient

from lampo.web import Site, flash, gettext, safe_next, session
from lampo.web.guard import CSP, SESSION_COOKIE
from lampo.web.i18n import format_datetime

KEY = bytes(range(32))


@pytest.fixture
def site_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"lampo_webtest_{abs(hash(tmp_path)) % 10**8}"
    package = tmp_path / name
    (package / "templates").mkdir(parents=True)
    (package / "locale" / "fi" / "LC_MESSAGES").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "templates" / "page.html").write_text(
        textwrap.dedent(
            """\
            {% extends "base.html" %}
            {% block title %}{{ _("Counter") }}{% endblock %}
            {% block content %}<h1>{{ _("Counter") }}</h1><p id="n">{{ n }}</p>
            <p id="when">{{ format_datetime(when) }}</p>
            <form method="post" action="/count">{{ csrf_field() }}<button>{{ _("Add") }}</button></form>
            {% endblock %}
            """
        )
    )
    (package / "locale" / "fi" / "LC_MESSAGES" / "test.po").write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgid "Counter"\nmsgstr "Laskuri"\n\nmsgid "Add"\nmsgstr "Lisää"\n\n'
        '#, fuzzy\nmsgid "Added"\nmsgstr "Lisätty (luonnos)"\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.fixture
def client(site_package: str) -> TestClient:
    site = Site(package=site_package)
    app = FastAPI()
    site.install(app, session_key=KEY, secure=True)
    when = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)

    @app.get("/")
    async def page(request: Request) -> HTMLResponse:
        return site.render(request, "page.html", n=session(request).get("n", 0), when=when)

    @app.post("/count")
    async def count(request: Request) -> HTMLResponse:
        s = session(request)
        s["n"] = s.get("n", 0) + 1
        flash(request, gettext(request, "Added"))
        return site.render(request, "page.html", n=s["n"], when=when)

    @app.post("/v1/api")
    async def api() -> JSONResponse:
        return JSONResponse({"ok": True})

    return TestClient(app, base_url="https://suite.test")


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the form has no CSRF field"
    return found.group(1)


def test_pages_speak_finnish_first_and_english_on_request(client: TestClient) -> None:
    fi = client.get("/")
    assert fi.status_code == 200
    assert '<html lang="fi">' in fi.text
    assert "<h1>Laskuri</h1>" in fi.text and "Siirry sisältöön" in fi.text
    assert "2.12.2026" in fi.text and "12.30" in fi.text  # Finnish time (UTC+2), Finnish form

    switched = client.get("/lang/en?next=/", follow_redirects=False)
    assert switched.status_code == 303 and switched.headers["location"] == "/"
    en = client.get("/")
    assert '<html lang="en">' in en.text and "<h1>Counter</h1>" in en.text and "Skip to content" in en.text


def test_language_switch_never_sends_you_to_another_site(client: TestClient) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil", ""):
        answer = client.get("/lang/en", params={"next": target}, follow_redirects=False)
        assert answer.headers["location"] == "/"
    assert safe_next("/requests/abc?x=1") == "/requests/abc?x=1"


def test_a_form_without_the_sessions_token_is_refused_and_nothing_runs(client: TestClient) -> None:
    refused = client.post("/count", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    assert "Lomake oli vanhentunut" in refused.text
    token = _csrf(client.get("/").text)
    assert client.post("/count", data={}).status_code == 403  # no token at all
    done = client.post("/count", data={"csrf_token": token})
    assert done.status_code == 200 and '<p id="n">1</p>' in done.text
    # a fuzzy translation is not used: the English msgid shows instead
    assert "Added" in done.text and "luonnos" not in done.text
    again = client.post("/count", headers={"X-CSRF-Token": token})
    assert '<p id="n">2</p>' in again.text


def test_a_form_from_another_origin_is_refused_even_with_the_token(client: TestClient) -> None:
    token = _csrf(client.get("/").text)
    refused = client.post("/count", data={"csrf_token": token}, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    ok = client.post("/count", data={"csrf_token": token}, headers={"Origin": "https://suite.test"})
    assert ok.status_code == 200


def test_the_session_cookie_is_signed_httponly_secure_and_samesite(client: TestClient) -> None:
    answer = client.get("/")
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    for flag in ("HttpOnly", "SameSite=Lax", "Secure", "Path=/"):
        assert flag in cookie
    value = client.cookies[SESSION_COOKIE]
    client.cookies.set(SESSION_COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    # a tampered cookie is no session: its token no longer matches
    assert client.post("/count", data={"csrf_token": "x"}).status_code == 403
    page = client.get("/")
    assert '<p id="n">0</p>' in page.text


def test_every_page_carries_the_security_headers_and_is_not_cached(client: TestClient) -> None:
    answer = client.get("/")
    assert answer.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "'unsafe-inline'" not in CSP and "frame-ancestors 'none'" in CSP
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    css = client.get("/static/lampo.css")
    assert css.status_code == 200 and "skip-link" in css.text


def test_the_json_api_is_outside_the_guard(client: TestClient) -> None:
    answer = client.post("/v1/api", json={})
    assert answer.status_code == 200
    assert "set-cookie" not in answer.headers


def test_moments_are_written_in_finnish_time() -> None:
    moment = datetime(2026, 6, 1, 21, 15, tzinfo=UTC)
    assert format_datetime(moment, "fi", "short") == "2.6.2026 0.15"
    assert "12:15" in format_datetime(moment, "en", "short")


def test_a_rectification_form_becomes_the_contracts_corrections() -> None:
    from lampo.web.forms import corrections_of, field_of

    form = {"first_names": "  Maija   Liisa ", "street": "Kuusitie 3", "city": "", "unrelated": "x"}
    assert corrections_of(form) == {"person": {"first_names": "Maija Liisa"}, "contact": {"street": "Kuusitie 3"}}
    assert corrections_of({"city": "   "}) == {}
    assert field_of("contact", ("postal_code",)) == "postal_code" and field_of("person", ("street",)) is None
