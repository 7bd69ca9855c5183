"""The consent pages of the privacy centre: the verified subject's preferences per purpose, with a
form to grant or withdraw each, and the Kantara-style receipts to download.

Everything is the consent service's (its API for the ``portal`` caller, lampo.consent.api): the
page shows what that service holds and asks it to record each change. A withdrawal is recorded,
and in force, before the service answers, so the page says "withdrawn" only once it holds
(the registry then deletes the profile; privacy statement §5).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic_settings import BaseSettings, SettingsConfigDict

from lampo.http_auth import credential_headers
from lampo.portal.session import Verified, current_subject
from lampo.web import Site, flash, gettext
from lampo.web.i18n import N_

router = APIRouter(include_in_schema=False)

PURPOSES: dict[str, tuple[str, str]] = {
    "profiling": (
        N_("Profiling"),
        N_(
            "We analyse your heat consumption to place it in a consumption band and see its trend, to develop our services."
        ),
    ),
    "direct_marketing": (
        N_("Direct marketing"),
        N_("We send you offers and news about our products and services."),
    ),
    "automated_decisions": (
        N_("Automated decisions"),
        N_("Decisions about you made solely by automated processing, profiling included."),
    ),
}
"""Labels of the purposes the consent service declares; a purpose added there later is shown by
its name and its legal description until it gets labels here."""
STATES: dict[str | None, str] = {
    None: N_("Not given"),
    "granted": N_("Given"),
    "withdrawn": N_("Withdrawn"),
    "objected": N_("Objected"),
}
CHANNELS: dict[str, str] = {
    "portal": N_("in the privacy centre"),
    "web": N_("on our website"),
    "phone": N_("by phone"),
    "email": N_("by e-mail"),
    "letter": N_("by letter"),
    "in_person": N_("in person"),
}
ACTIONS = ("grant", "withdraw")
# Texts made in Python (flashes, errors): marked for the catalogue here, translated per request.
NO_SUCH_PAGE = N_("No such page.")
NO_SUCH_PURPOSE = N_("No such purpose.")
NO_SUCH_RECEIPT = N_("No such receipt.")
OBJECTION_STANDS = N_("Your objection to %(purpose)s stands: it is not processed.")
WITHDRAWN = N_("Consent to %(purpose)s withdrawn. It took effect at once.")
GIVEN = N_("Consent to %(purpose)s given. You can withdraw it at any time.")


class ConsentPagesSettings(BaseSettings):
    """Where the consent service answers (``LAMPO_CONSENT_URL``)."""

    model_config = SettingsConfigDict(env_prefix="LAMPO_", extra="ignore")

    consent_url: str = "http://127.0.0.1:8102"


class ConsentUnavailable(Exception):
    """The consent service did not answer as it should (down, or an unexpected status)."""


def consent_client(request: Request) -> httpx.AsyncClient:
    """A client of the consent service as the ``portal`` caller (the portal's own token). A test
    may put the service's ASGI app behind it: ``app.state.consent_transport``."""
    settings = request.app.state.settings
    transport = getattr(request.app.state, "consent_transport", None)
    return httpx.AsyncClient(
        base_url=ConsentPagesSettings().consent_url,
        transport=transport,
        timeout=float(getattr(settings, "upstream_timeout_s", 10.0)),
        headers=credential_headers(settings),
    )


async def consent_call(request: Request, method: str, path: str) -> httpx.Response:
    try:
        async with consent_client(request) as client:
            answer = await client.request(method, path)
    except httpx.HTTPError as e:
        raise ConsentUnavailable(type(e).__name__) from None
    if answer.status_code >= 500 or answer.status_code in (401, 403):
        raise ConsentUnavailable(str(answer.status_code))
    return answer


def _site(request: Request) -> Site:
    site: Site = request.app.state.lampo_site
    return site


def label(purpose: str) -> str:
    return PURPOSES.get(purpose, (purpose, ""))[0]


def _unavailable(request: Request) -> HTMLResponse:
    return _site(request).render(
        request, "consents.html", status_code=503, subject=current_subject(request), purposes=[], receipts=[],
        unavailable=True, restricted_since=None,
    )  # fmt: skip


@router.get("/consents", response_class=HTMLResponse)
async def consents(request: Request, subject: Verified) -> HTMLResponse:
    base = f"/v1/customers/{subject.customer_number}"
    try:
        preferences = (await consent_call(request, "GET", f"{base}/consents")).json()
        receipts = (await consent_call(request, "GET", f"{base}/receipts")).json()["receipts"]
    except ConsentUnavailable:
        return _unavailable(request)
    purposes: list[dict[str, Any]] = []
    for p in preferences["purposes"]:
        title, help_text = PURPOSES.get(p["purpose"], (p["purpose"], p["description"]))
        purposes.append(
            {
                **p,
                "title": title,
                "help": help_text,
                "known": p["purpose"] in PURPOSES,
                "state_label": STATES.get(p["state"], p["state"]),
                "channel_label": CHANNELS.get(p["channel"] or "", p["channel"]),
            }
        )
    for r in receipts:
        r["title"] = label(r["purpose"])
        r["state_label"] = STATES.get(r["state"], r["state"])
    return _site(request).render(
        request, "consents.html", subject=subject, purposes=purposes, receipts=receipts, unavailable=False,
        restricted_since=preferences.get("restricted_since"),
    )  # fmt: skip


@router.post("/consents/{purpose}/{action}")
async def change(request: Request, purpose: str, action: str, subject: Verified) -> Response:
    if action not in ACTIONS:
        return _site(request).render(request, "error.html", status_code=404, status=404,
                                     message=gettext(request, NO_SUCH_PAGE))  # fmt: skip
    try:
        answer = await consent_call(
            request, "POST", f"/v1/customers/{subject.customer_number}/consents/{purpose}/{action}"
        )
    except ConsentUnavailable:
        return _unavailable(request)
    if answer.status_code == 404:
        return _site(request).render(request, "error.html", status_code=404, status=404,
                                     message=gettext(request, NO_SUCH_PURPOSE))  # fmt: skip
    body = answer.json()
    name = gettext(request, label(purpose))
    if body["state"] == "objected":
        flash(request, gettext(request, OBJECTION_STANDS, purpose=name))
    elif body["state"] == "withdrawn":
        flash(request, gettext(request, WITHDRAWN, purpose=name))
    else:
        flash(request, gettext(request, GIVEN, purpose=name))
    return RedirectResponse(f"/consents#purpose-{purpose}", status_code=303)


@router.get("/consents/receipts/{receipt_id}")
async def receipt(request: Request, receipt_id: str, subject: Verified) -> Response:
    """The receipt as the consent service keeps it, downloaded as ``consent-receipt-<id>.json``."""
    try:
        wanted = uuid.UUID(receipt_id.removesuffix(".json"))
    except ValueError:
        wanted = None
    answer = None
    if wanted is not None:
        try:
            answer = await consent_call(request, "GET", f"/v1/customers/{subject.customer_number}/receipts/{wanted}")
        except ConsentUnavailable:
            return _unavailable(request)
    if answer is None or answer.status_code != 200:
        return _site(request).render(request, "error.html", status_code=404, status=404,
                                     message=gettext(request, NO_SUCH_RECEIPT))  # fmt: skip
    return Response(
        answer.content,
        media_type="application/json",
        headers={"content-disposition": f'attachment; filename="consent-receipt-{wanted}.json"'},
    )
