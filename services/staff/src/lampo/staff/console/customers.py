"""The console's customer look-up and customer page. Every call goes through
``lampo.staff.customer_view.Customers``, as the JSON API's do: the same roles × categories matrix,
the same stores, the same audit rows (interface "console").

- ``/console/customers``: the search form (customer number, identity code, e-mail or name). The
  search is a POST with its CSRF token, so the value never reaches a URL, a log or the browser's
  history; the registry finds the customer through its blind indexes (never decrypting the
  register to search), and the audit log records who searched, by which field, and how many were
  found.
- ``/console/customers/{customer_number}``: the customer's data by category, from every store
  that holds it (registry; billing; recordings and the consent ledger under the customer
  relationship). A category outside the user's roles is not shown at all, and no store holding
  only such categories is asked. The view is audited (who, which customer, which categories).
- ``/console/customers/{customer_number}/recordings/{recording_id}/audio``: a call recording's
  audio, streamed from the recordings store through the staff service (the page's ``<audio>``
  plays it from the console's own origin, as the CSP requires); each playback is audited.

Who may open them: a user whose roles may read some customer data; anyone else gets the audited
403 page.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from lampo.staff.console.auth import User, refuse, render
from lampo.staff.customer_view import Customers, CustomerView
from lampo.staff.domain import Rights
from lampo.staff.errors import InvalidInput
from lampo.web.i18n import N_

INTERFACE: Final = "console"
READINGS_SHOWN: Final = 24
"""Consumption readings listed on the page (the latest first); the rest are counted."""

SEARCH_FIELDS: Final = {
    "customer_number": N_("Customer number"),
    "identity_code": N_("Personal identity code"),
    "email": N_("E-mail address"),
    "name": N_("Name"),
}
CATEGORIES: Final = {
    "basic": N_("Basic details"),
    "contact_person": N_("Contact person details"),
    "contact": N_("Contact details"),
    "billing": N_("Billing"),
    "customer_relationship": N_("Customer relationship"),
    "services": N_("Services"),
    "consumption": N_("Consumption"),
    "other_consented": N_("Other data processed with consent"),
}
STORES: Final = {
    "registry": N_("Customer register"),
    "billing": N_("Billing system"),
    "recordings": N_("Call recordings and e-mail archive"),
    "consent": N_("Consent ledger"),
}
KINDS: Final = {
    # registry sections and tables
    "person": N_("Person"),
    "organisation": N_("Organisation"),
    "metering_points": N_("Metering points"),
    "account": N_("Online account"),
    "contact": N_("Contact details"),
    "contact_person_for": N_("Contact person for"),
    "relationship_end": N_("End of the customer relationship"),
    "contract": N_("Contract"),
    "consumption_report": N_("Consumption reading"),
    "interaction": N_("Customer service contact"),
    "profile": N_("Consumption profile"),
    # billing
    "invoice": N_("Invoice"),
    "payment": N_("Payment"),
    "collection": N_("Collection case"),
    "credit_check": N_("Credit check"),
    # recordings and consent
    "recording": N_("Call recording"),
    "email": N_("Archived e-mail"),
    "consent": N_("Consent"),
    "ledger_entry": N_("Consent ledger entry"),
}
FIELDS: Final = {
    "first_names": N_("First names"),
    "last_name": N_("Last name"),
    "birth_date": N_("Date of birth"),
    "personal_identity_code": N_("Personal identity code"),
    "mother_tongue": N_("Mother tongue"),
    "gender": N_("Gender"),
    "name": N_("Name"),
    "business_id": N_("Business ID"),
    "street": N_("Street address"),
    "postal_code": N_("Postal code"),
    "city": N_("City"),
    "country": N_("Country"),
    "phone": N_("Phone"),
    "email": N_("E-mail"),
    "username": N_("Username"),
    "customer_number": N_("Customer number"),
    "employer": N_("Employer"),
    "position": N_("Position"),
    "ended_at": N_("Ended"),
    "contract_id": N_("Contract"),
    "product": N_("Product"),
    "status": N_("Status"),
    "valid_from": N_("Valid from"),
    "valid_to": N_("Valid until"),
    "metering_point": N_("Metering point"),
    "period_start": N_("Period start"),
    "period_end": N_("Period end"),
    "energy_mwh": N_("Energy (MWh)"),
    "annual_forecast_mwh": N_("Annual forecast (MWh)"),
    "interaction_id": N_("Contact"),
    "channel": N_("Channel"),
    "at": N_("Time"),
    "summary": N_("Summary"),
    "annual_mwh": N_("Annual consumption (MWh)"),
    "band": N_("Band"),
    "trend": N_("Trend"),
    "reports": N_("Readings"),
    "invoice_number": N_("Invoice number"),
    "issued_at": N_("Issued"),
    "due_date": N_("Due date"),
    "total_eur": N_("Total (EUR)"),
    "lines": N_("Lines"),
    "paid_at": N_("Paid"),
    "amount_eur": N_("Amount (EUR)"),
    "agency": N_("Collection agency"),
    "opened_at": N_("Opened"),
    "checked_at": N_("Checked"),
    "provider": N_("Provider"),
    "result": N_("Result"),
}
ORIGINS: Final = {
    "subject": N_("the customer"),
    "authority": N_("an authority"),
    "third_party": N_("a third party"),
    "controller": N_("the company"),
    "derived": N_("derived by the company"),
}

router = APIRouter(include_in_schema=False)


def customers_of(request: Request) -> Customers:
    found: Customers = request.app.state.customers
    return found


async def reader(request: Request, user: User) -> Rights:
    """The user, if their roles may read some customer data; else the audited 403 page."""
    if not user.read:
        await refuse(request, user, "read customer data")
    return user


Reader = Annotated[Rights, Depends(reader)]
CustomerNumber = Annotated[str, Path(max_length=128)]


def _labels() -> dict[str, Any]:
    return {"SEARCH_FIELDS": SEARCH_FIELDS, "CATEGORIES": CATEGORIES, "STORES": STORES, "KINDS": KINDS,
            "FIELDS": FIELDS, "ORIGINS": ORIGINS}  # fmt: skip


@router.get("/console/customers")
async def search_page(request: Request, user: Reader) -> HTMLResponse:
    return render(request, "console/customers_search.html", user=user, by="name", found=None, error=None, **_labels())


@router.post("/console/customers")
async def search(
    request: Request,
    user: Reader,
    by: Annotated[str, Form(max_length=32)] = "",
    value: Annotated[str, Form(max_length=320)] = "",
) -> HTMLResponse:
    if by not in SEARCH_FIELDS or not value.strip():
        field = "by" if by not in SEARCH_FIELDS else "value"
        return render(request, "console/customers_search.html", user=user, status_code=422, by=by or "name",
                      found=None, error=field, **_labels())  # fmt: skip
    try:
        found = await customers_of(request).search(user, by, value.strip(), interface=INTERFACE)
    except InvalidInput as e:
        field = e.detail.split(":", 1)[0]
        return render(request, "console/customers_search.html", user=user, status_code=422, by=by, found=None,
                      error=field, **_labels())  # fmt: skip
    # The value is not echoed back into the page: it stays in the form the user typed it in.
    return render(request, "console/customers_search.html", user=user, by=by, found=found, error=None, **_labels())


def _sections(view: CustomerView) -> list[dict[str, Any]]:
    """The page's sections: one per category read, its items grouped by store."""
    sections = []
    for category, items in view.categories.items():
        stores: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            stores.setdefault(item.get("store", "registry"), []).append(item)
        readings = [i for i in stores.get("registry", []) if i.get("kind") == "consumption_report"]
        if readings:  # the latest first, a page's worth
            others = [i for i in stores["registry"] if i.get("kind") != "consumption_report"]
            readings.sort(key=lambda i: str(i["data"].get("period_start")), reverse=True)
            stores["registry"] = others
            sections.append({"category": category, "stores": stores, "readings": readings[:READINGS_SHOWN],
                             "more_readings": max(0, len(readings) - READINGS_SHOWN)})  # fmt: skip
        else:
            sections.append({"category": category, "stores": stores, "readings": [], "more_readings": 0})
    return sections


@router.get("/console/customers/{customer_number}")
async def customer_page(request: Request, customer_number: CustomerNumber, user: Reader) -> HTMLResponse:
    view = await customers_of(request).read(user, customer_number, interface=INTERFACE)
    return render(request, "console/customers_customer.html", user=user, view=view, groups=_sections(view),
                  **_labels())  # fmt: skip


@router.get("/console/customers/{customer_number}/recordings/{recording_id}/audio")
async def audio(
    request: Request,
    customer_number: CustomerNumber,
    recording_id: Annotated[str, Path(max_length=128)],
    user: Reader,
) -> Response:
    sound = await customers_of(request).audio(user, customer_number, recording_id, interface=INTERFACE)
    return StreamingResponse(sound.body, media_type=sound.media_type, headers={"cache-control": "no-store"})
