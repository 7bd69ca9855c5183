"""Strong electronic identification: Suomi.fi e-Identification in production (a SAML 2.0
identity provider answering with the person's identity code, which the register maps to their
customer number). ``StrongIdentification`` is the interface such a provider is plugged in as; this
module carries only the local stand-in, enabled by ``LAMPO_STRONG_ID_STANDIN`` (on in ``make up``,
off by default and in docker-compose.yml). Its page says plainly that it is not identification:
whoever uses it is taken at their word.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lampo.portal.domain import check_customer_number
from lampo.portal.email_code import NEXT
from lampo.portal.render import portal, render
from lampo.portal.session import Method, set_subject
from lampo.web import safe_next, session
from lampo.web.i18n import N_


class StrongIdentification:
    """The shape of a strong identification provider: its pages start at ``path`` and end by
    recording the identified customer with ``set_subject(request, number, "strong_electronic", at)``."""

    method: Method = "strong_electronic"
    title = N_("Strong electronic identification")
    description = N_("Identify yourself with online banking codes or a mobile certificate (Suomi.fi e-Identification).")
    path = "/verify/strong"


class StandInIdentification(StrongIdentification):
    """The local stand-in: the visitor types a customer number and is taken at their word."""

    title = N_("Stand-in for strong identification (not real identification)")
    description = N_("For development and tests only: no identity is checked.")

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)

        @router.get("/verify/strong", response_class=HTMLResponse)
        async def page(request: Request, next: str | None = None) -> HTMLResponse:
            if next:
                session(request)[NEXT] = safe_next(next)
            return render(request, "verify_standin.html", values={}, errors={})

        @router.post("/verify/strong", response_model=None)
        async def identify(request: Request, customer_number: Annotated[str, Form()] = "") -> Response:
            number = customer_number.strip()
            error = check_customer_number(number)
            if error:
                return render(request, "verify_standin.html", status_code=422,
                              values={"customer_number": number}, errors={"customer_number": error})  # fmt: skip
            set_subject(request, number, "strong_electronic", portal(request).runtime.clock.now())
            return RedirectResponse(safe_next(session(request).pop(NEXT, None), "/requests"), status_code=303)

        return router
