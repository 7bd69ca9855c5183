"""Verification by a one-time code sent to the e-mail address the register holds.

The visitor gives their customer number; the portal asks the registry for the address (the
``portal`` caller's ``GET /v1/subjects/{n}/email``) and sends a code of ``code_digits`` digits.
Only the code's HMAC is stored; it holds ``code_ttl_s`` (10 minutes) and ``code_max_attempts``
(5) wrong tries lock it. The page answers the same whether or not the number exists or has an
address (an unknown number gets a challenge no code opens), the mail goes out in the background
(the answer takes as long either way), and the address is never shown.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lampo.mail import MailFailed
from lampo.portal import store
from lampo.portal.clients import Unavailable
from lampo.portal.domain import check_customer_number, clean_code, code_mac, code_matches, new_code
from lampo.portal.letters import code_letter
from lampo.portal.render import portal, render
from lampo.portal.session import Method, set_subject
from lampo.web import safe_next, session
from lampo.web.i18n import N_, pick

if TYPE_CHECKING:
    from lampo.portal.app import Portal

log = logging.getLogger("lampo.portal")
CHALLENGE = "code_challenge"
NEXT = "verify_next"

Outcome = Literal["ok", "wrong", "locked", "expired"]


@dataclass(frozen=True)
class CodeCheck:
    outcome: Outcome
    customer_number: str | None = None
    tries_left: int = 0


class EmailCodes:
    """Codes: sent, checked. ``send`` always answers with a challenge id."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self._sending: set[asyncio.Task[None]] = set()

    async def send(self, customer_number: str, lang: str) -> str:
        p, settings = self.portal, self.portal.settings
        now = p.runtime.clock.now()
        challenge = str(uuid.uuid4())
        async with p.runtime.pool.acquire() as conn:
            recent = await store.codes_sent_since(
                conn, customer_number, now - timedelta(seconds=settings.code_send_window_s)
            )
        # Asked before the limit is reached (unknown numbers too, so the limit tells nothing).
        address = await p.registry_api.email_of(customer_number) if recent < settings.code_sends_per_window else None
        code = new_code(settings.code_digits)
        # A number without an address (or over its limit) gets a challenge no code opens.
        mac = code_mac(settings.code_key(), challenge, code) if address else secrets.token_bytes(32)
        async with p.runtime.pool.acquire() as conn:
            expires = now + timedelta(seconds=settings.code_ttl_s)
            await store.add_code(conn, challenge, customer_number, mac=mac, now=now, expires_at=expires)
        if address:
            task = asyncio.create_task(self._mail(address, code, lang), name="portal-code-mail")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        return challenge

    async def _mail(self, address: str, code: str, lang: str) -> None:
        letter = code_letter(self.portal.site.translations[lang], lang, code, self.portal.settings.code_ttl_s // 60)
        try:
            await self.portal.mailer.send(address, letter.subject, letter.text, lang=lang)
        except MailFailed as e:  # the visitor asks again; the reason is logged, never the address
            log.warning("one-time code mail not sent (%s)", type(e).__name__)

    async def drain(self) -> None:
        """Wait for the mail being sent (tests; shutdown)."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def check(self, challenge_id: str, typed: str) -> CodeCheck:
        p, settings = self.portal, self.portal.settings
        now = p.runtime.clock.now()
        async with p.runtime.pool.acquire() as conn, conn.transaction():
            code = await store.code_for_update(conn, challenge_id)
            if code is None or code.used_at is not None or code.expires_at <= now:
                return CodeCheck("expired")
            if code.attempts >= settings.code_max_attempts:
                return CodeCheck("locked")
            if code_matches(settings.code_key(), challenge_id, clean_code(typed), code.mac):
                await store.use_code(conn, challenge_id, now)
                return CodeCheck("ok", code.customer_number)
            attempts = await store.count_wrong_try(conn, challenge_id)
        left = settings.code_max_attempts - attempts
        return CodeCheck("wrong", tries_left=left) if left > 0 else CodeCheck("locked")


class EmailCodeVerifier:
    method: Method = "email_code"
    title = N_("A one-time code by e-mail")
    description = N_("We send a code to the e-mail address in our customer register. You need your customer number.")
    path = "/verify/email"

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)

        @router.get("/verify/email", response_class=HTMLResponse)
        async def ask_number(request: Request, next: str | None = None) -> HTMLResponse:
            if next:
                session(request)[NEXT] = safe_next(next)
            return render(request, "verify_email.html", values={}, errors={})

        @router.post("/verify/email", response_model=None)
        async def send_code(request: Request, customer_number: Annotated[str, Form()] = "") -> Response:
            number = customer_number.strip()
            error = check_customer_number(number)
            if error:
                return render(request, "verify_email.html", status_code=422,
                              values={"customer_number": number}, errors={"customer_number": error})  # fmt: skip
            try:
                challenge = await portal(request).codes.send(number, pick(getattr(request.state, "lang", None)))
            except Unavailable:
                return render(request, "unavailable.html", status_code=503)
            session(request)[CHALLENGE] = challenge
            return RedirectResponse("/verify/code", status_code=303)

        @router.get("/verify/code", response_model=None)
        async def ask_code(request: Request) -> Response:
            if not session(request).get(CHALLENGE):
                return RedirectResponse("/verify/email", status_code=303)
            return render(request, "verify_code.html", errors={})

        @router.post("/verify/code", response_model=None)
        async def check_code(request: Request, code: Annotated[str, Form()] = "") -> Response:
            data = session(request)
            challenge = data.get(CHALLENGE)
            if not isinstance(challenge, str):
                return RedirectResponse("/verify/email", status_code=303)
            if not clean_code(code):
                return render(request, "verify_code.html", status_code=422,
                              errors={"code": N_("Enter the code from the e-mail.")})  # fmt: skip
            checked = await portal(request).codes.check(challenge, code)
            if checked.outcome == "ok" and checked.customer_number:
                data.pop(CHALLENGE, None)
                set_subject(request, checked.customer_number, "email_code", portal(request).runtime.clock.now())
                return RedirectResponse(safe_next(data.pop(NEXT, None), "/requests"), status_code=303)
            if checked.outcome == "wrong":
                return render(request, "verify_code.html", status_code=422, tries_left=checked.tries_left,
                              errors={"code": N_("The code is not right.")})  # fmt: skip
            data.pop(CHALLENGE, None)  # locked or expired: a new code is needed
            message = (N_("Too many wrong tries: this code no longer works. Ask for a new code.")
                       if checked.outcome == "locked" else N_("The code has expired. Ask for a new code."))  # fmt: skip
            return render(request, "verify_code.html", status_code=422, ended=True, errors={"code": message})

        return router
