"""The privacy centre's rules, without I/O: one-time codes, and the request forms of §11-§13
(what each kind asks, how its answers are checked, and the ``dsar.submitted`` they make).

Form errors are msgids (English, translated on the page): ``{field: message}``, never echoing
what was typed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import BaseModel, ValidationError

from lampo.contracts.registry import Contact, PersonCorrection
from lampo.web.forms import RECTIFIABLE, corrections_of, field_of, tidy
from lampo.web.i18n import N_

Kind = Literal["access", "portability", "rectification", "erasure", "objection", "restriction"]
KINDS: Final[tuple[Kind, ...]] = ("access", "portability", "rectification", "erasure", "objection", "restriction")
CUSTOMER_NUMBER: Final = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,63}")
OBJECTION_SCOPES: Final = ("processing", "direct_marketing", "profiling", "automated_decisions")
RESTRICTION_ACTIONS: Final = ("place", "lift")

# -- one-time codes ------------------------------------------------------------------------------


def new_code(digits: int) -> str:
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def code_mac(key: bytes, challenge_id: str, code: str) -> bytes:
    """The HMAC a code is kept as, bound to its challenge (the same code of another is another MAC)."""
    return hmac.new(key, f"{challenge_id}:{code}".encode(), hashlib.sha256).digest()


def code_matches(key: bytes, challenge_id: str, code: str, mac: bytes) -> bool:
    return hmac.compare_digest(code_mac(key, challenge_id, code), mac)


def clean_code(value: str) -> str:
    """What the visitor typed, without the spaces and dashes a code is often copied with."""
    return re.sub(r"[\s-]", "", value)


def check_customer_number(value: str) -> str | None:
    """An error msgid, or None when ``value`` looks like a customer number."""
    if not value:
        return N_("Enter your customer number.")
    if not CUSTOMER_NUMBER.fullmatch(value):
        return N_("A customer number has only letters, digits and dashes. You find it on your invoice.")
    return None


# -- request forms -------------------------------------------------------------------------------

_SECTION_MODELS: Final[dict[str, type[BaseModel]]] = {"person": PersonCorrection, "contact": Contact}
_FIELD_ERRORS: Final = {
    "first_names": N_("Enter your first names as they should be."),
    "last_name": N_("Enter your last name as it should be."),
    "street": N_("Enter the street address as it should be."),
    "postal_code": N_("Enter a postal code of five digits, such as 40100."),
    "city": N_("Enter the city or town."),
    "phone": N_("Enter the phone number with its country code, such as +358 40 123 4567."),
    "email": N_("Enter an e-mail address such as name@example.fi."),
}


@dataclass
class RequestForm:
    """A request form's outcome: ``extra`` for ``dsar.submitted`` when ``errors`` is empty."""

    kind: Kind
    values: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def read_form(kind: Kind, form: Mapping[str, str]) -> RequestForm:
    """Check the answers of ``kind``'s form; the values kept are only those the form asks."""
    if kind == "rectification":
        return _rectification(form)
    if kind == "erasure":
        values = {"confirm": "yes" if form.get("confirm") == "yes" else ""}
        result = RequestForm(kind, values)
        if not values["confirm"]:
            result.errors["confirm"] = N_("Tick the box to confirm that you want your data erased.")
        return result
    if kind == "objection":
        scope = form.get("scope", "")
        result = RequestForm(kind, {"scope": scope if scope in OBJECTION_SCOPES else ""})
        if scope not in OBJECTION_SCOPES:
            result.errors["scope"] = N_("Choose what you object to.")
        else:
            result.extra["scope"] = scope
        return result
    if kind == "restriction":
        action = form.get("action", "")
        result = RequestForm(kind, {"action": action if action in RESTRICTION_ACTIONS else ""})
        if action not in RESTRICTION_ACTIONS:
            result.errors["action"] = N_("Choose whether processing is to be restricted or the restriction lifted.")
        elif action == "lift":
            result.extra["lift"] = True
        return result
    return RequestForm(kind, {})  # access, portability: the whole of the data, nothing to ask


def _rectification(form: Mapping[str, str]) -> RequestForm:
    values = {name: tidy(form.get(name)) for name in RECTIFIABLE}
    result = RequestForm("rectification", values)
    sections = corrections_of(values)
    if not sections:
        result.errors["first_names"] = N_("Fill in at least one field you want corrected.")
        return result
    corrections: dict[str, Any] = {}
    for section, fields in sections.items():
        # the form is for Finnish addresses
        data = {"country": "FI", **fields} if section == "contact" and "postal_code" in fields else fields
        try:
            model = _SECTION_MODELS[section].model_validate(data)
        except ValidationError as e:
            for error in e.errors():
                found = field_of(section, tuple(error["loc"]))
                if found is not None:
                    result.errors.setdefault(found, _FIELD_ERRORS[found])
            continue
        corrections[section] = model.model_dump(mode="json", exclude_unset=True)
    if not result.errors:
        result.extra["corrections"] = corrections
    return result


def submitted(
    request_id: str, kind: Kind, customer_number: str, *, method: str, verified_at: str, received_at: str,
    extra: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The body of ``POST /v1/requests`` (the data of ``dsar.submitted``, channel ``portal``)."""
    return {
        "request_id": request_id,
        "kind": kind,
        "identifiers": {"customer_number": customer_number},
        "verification": {"method": method, "verified_by": "portal", "verified_at": verified_at},
        "received_at": received_at,
        "channel": "portal",
        **extra,
    }
