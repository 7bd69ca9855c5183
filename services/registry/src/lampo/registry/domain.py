"""The register's rules, free of Kafka and SQL: how an upsert splits into sections, which §6
category each section belongs to, and which update wins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lampo.contracts.registry import CustomerUpserted

# Section of customer.upserted -> data category of DESIGN.md §6.
SECTION_CATEGORY: dict[str, str] = {
    "person": "basic",
    "organisation": "basic",
    "metering_points": "basic",
    "account": "basic",
    "contact": "contact",
    "contact_person_for": "contact_person",
}


@dataclass(frozen=True)
class SectionUpdate:
    section: str
    category: str
    payload: dict[str, Any] | list[Any]


@dataclass(frozen=True)
class Provenance:
    source_system: str
    origin: str
    legal_basis: str
    event_time: datetime
    event_id: str


def sections_of(upsert: CustomerUpserted) -> list[SectionUpdate]:
    """The sections present in an upsert: present ones replace, absent ones are left alone."""
    updates: list[SectionUpdate] = []
    for section, category in SECTION_CATEGORY.items():
        value = getattr(upsert, section)
        if value is None:
            continue
        payload = value if isinstance(value, list) else value.model_dump(mode="json")
        updates.append(SectionUpdate(section, category, payload))
    return updates


def lookup_keys(upsert: CustomerUpserted) -> dict[str, str]:
    """Values indexed (by keyed hash) for identity resolution."""
    keys: dict[str, str] = {}
    if upsert.person is not None and upsert.person.personal_identity_code:
        keys["personal_identity_code"] = upsert.person.personal_identity_code
    if upsert.contact is not None and upsert.contact.email:
        keys["email"] = upsert.contact.email
    if upsert.organisation is not None and upsert.organisation.business_id:
        keys["business_id"] = upsert.organisation.business_id
    return keys
