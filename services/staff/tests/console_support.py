"""Helpers of the console's HTTP tests (importable by name): a client that keeps the session
cookie and sends each form with the session's CSRF token, as a browser would."""

from __future__ import annotations

import base64
import json
import re
import zlib
from typing import Any

import httpx
from staff_support import Suite

from lampo.web.guard import SESSION_COOKIE

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """An HTTP client on the staff service's ASGI app with a cookie jar (https, so the Secure
    session cookie is sent back), posting forms like the console's pages do."""

    def __init__(self, suite: Suite, address: str = "127.0.0.1") -> None:
        self.suite = suite
        transport = httpx.ASGITransport(app=suite.staff.runtime.app, client=(address, 40000))
        self.http = httpx.AsyncClient(transport=transport, base_url="https://staff")

    async def __aenter__(self) -> Browser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(path, **kwargs)

    async def csrf(self) -> str:
        page = await self.http.get("/console/login", follow_redirects=True)  # or the start page, once logged in
        found = _CSRF.search(page.text)
        assert found, page.text
        return found.group(1)

    async def post(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = await self.csrf()
        return await self.http.post(path, data=form)

    async def login(self, username: str, secret: str, *, commit: bool = True) -> httpx.Response:
        r = await self.post("/console/login", {"username": username, "password": secret})
        if commit and r.status_code == 303 and r.headers["location"].startswith("/console/confidentiality"):
            version = self.suite.settings.confidentiality_text_version
            r = await self.post("/console/confidentiality", {"text_version": version, "agree": "yes", "next": "/console/"})
        return r

    async def login_as(self, role: str) -> Browser:
        r = await self.login(*self.suite.users[role])
        assert r.status_code == 303, r.text
        return self

    def session(self) -> dict[str, Any]:
        """The session cookie's content (signed, not encrypted: what a holder of the cookie sees)."""
        raw = self.http.cookies.get(SESSION_COOKIE)
        assert raw, "no session cookie"
        compressed = raw.startswith(".")  # itsdangerous marks a zlib-compressed payload so
        payload = raw.lstrip(".").split(".")[0]
        data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        value: dict[str, Any] = json.loads(zlib.decompress(data) if compressed else data)
        return value


def text_of(html: str) -> str:
    """The page's text without tags (what a reader sees, roughly)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
