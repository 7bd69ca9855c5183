"""The privacy statement page, open to everyone: rendered at each request from the data the
running system uses (lampo.statement: the controller, the data map, the participants' categories,
the staff roles, the topics' retention, the consent service's purposes), so what it promises
and what the system does cannot drift apart. ``/privacy-statement.json`` gives the same
statement as data.

The data map's own texts (descriptions, reasons, laws) are in English; the page around them is
in the visitor's language and marks them ``lang="en"``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lampo.contracts.categories import DEFAULT_PARTICIPANT_CATEGORIES
from lampo.controller import controller
from lampo.portal.consent_pages import PURPOSES, ConsentUnavailable, consent_call
from lampo.portal.session import current_subject
from lampo.statement import ConsentPurpose, Statement, load_statement
from lampo.web import Site
from lampo.web.i18n import N_

router = APIRouter(include_in_schema=False)

SERVICES_DIR = Path(__file__).resolve().parents[4]
"""``services/``: the data map is the retention service's file, the roles the staff service's."""

CATEGORIES = {
    "basic": N_("Basic details"),
    "contact_person": N_("Contact person details"),
    "contact": N_("Contact details"),
    "billing": N_("Billing"),
    "customer_relationship": N_("Customer relationship"),
    "services": N_("Services"),
    "consumption": N_("Consumption"),
    "other_consented": N_("Other data given with your consent"),
}
LEGAL_BASES = {
    "consent": N_("Your consent (GDPR Art. 6(1)(a))"),
    "contract": N_("The contract with you (GDPR Art. 6(1)(b))"),
    "legal_obligation": N_("A legal obligation of ours (GDPR Art. 6(1)(c))"),
    "legitimate_interest": N_("Our legitimate interest (GDPR Art. 6(1)(f))"),
}
SOURCES = {
    "subject": N_("you yourself"),
    "authority": N_("authorities"),
    "third_party": N_("third parties"),
}
TRIGGERS = {
    "relationship_ended": N_("after the customer relationship has ended"),
    "last_activity": N_("after the last contact (prospective customers)"),
    "financial_year_end": N_("after the end of the financial year of the latest invoice"),
    "recording_made": N_("after the recording was made"),
    "consent_withdrawn": N_("after the consent was withdrawn"),
}
SYSTEMS = {
    "registry": N_("customer register"),
    "billing": N_("billing system"),
    "recordings": N_("call recordings and archived e-mails"),
    "consent": N_("consent register"),
}
ROLES = {
    "administrator": N_("Administrator"),
    "customer_service": N_("Customer service"),
    "billing_clerk": N_("Billing clerk"),
    "data_protection_officer": N_("Data protection officer"),
    "managing_director": N_("Managing director"),
    "auditor": N_("Auditor"),
}
RIGHTS = {
    "access": N_("to see the data we hold about you (GDPR Art. 15)"),
    "portability": N_("to get the data you gave us in a machine-readable form (Art. 20)"),
    "rectification": N_("to have wrong data corrected (Art. 16)"),
    "erasure": N_("to have your data erased (Art. 17)"),
    "restriction": N_("to have the processing restricted (Art. 18)"),
    "objection": N_("to object to processing, profiling and direct marketing (Art. 21)"),
}


class StatementSettings(BaseSettings):
    """The files and the map the statement is built from: the same the services read
    (``LAMPO_DATAMAP_FILE``, ``LAMPO_ROLES_FILE``, ``LAMPO_PARTICIPANT_CATEGORIES``)."""

    model_config = SettingsConfigDict(env_prefix="LAMPO_", extra="ignore")

    datamap_file: Path = SERVICES_DIR / "retention" / "datamap.toml"
    roles_file: Path = SERVICES_DIR / "staff" / "src" / "lampo" / "staff" / "roles.toml"
    participant_categories: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_PARTICIPANT_CATEGORIES))


async def consent_purposes(request: Request) -> list[ConsentPurpose] | None:
    """The purposes the consent service declares (None: it did not answer)."""
    try:
        answer = await consent_call(request, "GET", "/v1/purposes")
    except ConsentUnavailable:
        return None
    if answer.status_code != 200:
        return None
    return [
        ConsentPurpose(p["purpose"], p["description"], p["consent_text_version"]) for p in answer.json()["purposes"]
    ]


async def current_statement(request: Request) -> tuple[Statement, bool]:
    """The statement as the system stands now, and whether the consent purposes were read."""
    settings = StatementSettings()
    purposes = await consent_purposes(request)
    statement = await asyncio.to_thread(
        load_statement,
        controller=controller(),
        datamap_file=settings.datamap_file,
        roles_file=settings.roles_file,
        participant_categories=settings.participant_categories,
        consent_purposes=purposes or (),
    )
    return statement, purposes is not None


@router.get("/privacy-statement", response_class=HTMLResponse)
async def statement_page(request: Request) -> HTMLResponse:
    statement, complete = await current_statement(request)
    site: Site = request.app.state.lampo_site
    longest = max((t.hours for t in statement.transit), default=0)
    return site.render(
        request, "statement.html", subject=current_subject(request), statement=statement, complete=complete,
        categories=CATEGORIES, legal_bases=LEGAL_BASES, sources=SOURCES, triggers=TRIGGERS, systems=SYSTEMS,
        roles=ROLES, rights=RIGHTS, purposes=PURPOSES, longest_transit=longest,
    )  # fmt: skip


@router.get("/privacy-statement.json")
async def statement_json(request: Request) -> JSONResponse:
    statement, _ = await current_statement(request)
    return JSONResponse(statement.as_dict())
