"""What the web pages' forms share: the fields a rectification form may correct, and how they
become the ``corrections`` of a ``dsar.submitted`` (CONTRACTS.md). The privacy centre's form
(lampo.portal.domain) and the console's registration form (lampo.staff.console.requests) both
use it, so a field added here is offered and mapped the same way in both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

RECTIFIABLE: Final = {
    # form field -> (section of ``corrections``, field in it)
    "first_names": ("person", "first_names"),
    "last_name": ("person", "last_name"),
    "street": ("contact", "street"),
    "postal_code": ("contact", "postal_code"),
    "city": ("contact", "city"),
    "phone": ("contact", "phone"),
    "email": ("contact", "email"),
}


def tidy(value: str | None) -> str:
    """A form value with its whitespace collapsed (leading, trailing and repeated)."""
    return " ".join((value or "").split())


def corrections_of(form: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The filled rectifiable fields of ``form`` as ``corrections`` sections (empty ones left out)."""
    sections: dict[str, dict[str, str]] = {}
    for name, (section, field) in RECTIFIABLE.items():
        value = tidy(form.get(name))
        if value:
            sections.setdefault(section, {})[field] = value
    return sections


def field_of(section: str, location: tuple[object, ...]) -> str | None:
    """The form field behind a validation error at ``location`` in ``section``, if one is."""
    return next((n for n, (s, f) in RECTIFIABLE.items() if s == section and f in location), None)
