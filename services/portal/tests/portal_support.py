"""Helpers of the portal tests (importable by name): one running environment per module, the real
registry (its e-mail look-up for the portal), the real DSAR coordinator with the registry as its
participant, the portal, each on its own database and consumer groups over the real broker and
PostgreSQL, and a real SMTP server (lampo.mail.catcher) keeping the mail in a directory. The
portal reaches the registry and the coordinator through their ASGI apps, as the ``portal`` caller.
"""

from __future__ import annotations

import html
import re
import secrets
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from faststream.asgi import AsgiFastStream

from lampo.mail import read_mailbox
from lampo.portal.app import Portal
from lampo.testing import eventually

PORTAL_TOKEN = secrets.token_urlsafe(24)
STAFF_TOKEN = secrets.token_urlsafe(24)
CALLERS = {"portal": PORTAL_TOKEN, "staff": STAFF_TOKEN}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def new_customer_number() -> str:
    return str(900_000_000 + uuid.uuid4().int % 10**8)


@dataclass
class Env:
    portal: Portal
    registry: AsgiFastStream
    dsar: AsgiFastStream
    mail_dir: Path
    dsar_runtime: Any = None

    def browser(self) -> httpx.AsyncClient:
        """A visitor: a client keeping its cookies, as a browser would."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.portal.runtime.app), base_url="http://portal.test"
        )

    def as_staff(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.dsar), base_url="http://dsar",
            headers={"authorization": f"Bearer {STAFF_TOKEN}"},
        )  # fmt: skip

    def mail_to(self, address: str) -> list[EmailMessage]:
        return [m for m in read_mailbox(self.mail_dir) if address in str(m["to"])]

    async def wait_mail(self, address: str, count: int, timeout: float = 30) -> list[EmailMessage]:
        async def arrived() -> bool:
            return len(self.mail_to(address)) >= count

        await eventually(arrived, timeout=timeout)
        return self.mail_to(address)


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, f"no CSRF field on {page.url}"
    return html.unescape(found.group(1))


async def post_form(
    client: httpx.AsyncClient, path: str, data: dict[str, Any], *, form_page: str | None = None
) -> httpx.Response:
    """Fill in and send a form as a browser does: the page first (its CSRF token), then the POST."""
    page = await client.get(form_page or path)
    assert page.status_code == 200, (page.status_code, page.text[:500])
    return await client.post(path, data={**data, "csrf_token": csrf_of(page)})


def code_in(message: EmailMessage) -> str:
    found = re.search(r"\b(\d{6})\b", text_of(message))
    assert found, "no code in the mail"
    return found.group(1)


async def verify_by_code(env: Env, client: httpx.AsyncClient, customer: str, address: str) -> None:
    before = len(env.mail_to(address))
    sent = await post_form(client, "/verify/email", {"customer_number": customer})
    assert sent.status_code == 303 and sent.headers["location"] == "/verify/code", sent.text[:500]
    [*_, mail] = await env.wait_mail(address, before + 1)
    checked = await post_form(client, "/verify/code", {"code": code_in(mail)})
    assert checked.status_code == 303, checked.text[:500]
