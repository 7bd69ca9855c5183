"""``registry.inbound.v1`` (from company systems) and ``registry.events.v1`` (change notices).

Sections of ``customer.upserted`` (``person``, ``organisation``, ``contact``,
``contact_person_for``, ``metering_points``, ``account``): a section *present* replaces the
stored one (``null`` clears it), an *absent* one leaves it as it is. Pydantic records which
fields were sent in ``model_fields_set``; :meth:`CustomerUpserted.sections_present` reads it.
"""

from __future__ import annotations

from datetime import date
from typing import Final, Literal, Self

from pydantic import ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from lampo.contracts._base import (
    Identifier,
    InboundContract,
    OutboundContract,
    Text,
    Timestamp,
)
from lampo.contracts.categories import Category
from lampo.contracts.errors import SCHEMA
from lampo.contracts.identifiers import (
    BusinessId,
    CountryCode,
    Email,
    EnergyMwh,
    LanguageCode,
    PersonalIdentityCode,
    Phone,
    check_postal_code,
)

SubjectKind = Literal["person", "entrepreneur", "organisation"]
Origin = Literal["subject", "authority", "third_party"]
"""Where a datum came from (privacy statement §7)."""
LegalBasis = Literal["contract", "consent", "legal_obligation", "legitimate_interest"]
Gender = Literal["0", "1", "2", "9"]
"""Population register / ISO 5218 code: 1 man, 2 woman, 0 unknown, 9 not applicable."""

SECTIONS: Final = (
    "person",
    "organisation",
    "contact",
    "contact_person_for",
    "metering_points",
    "account",
)


def _present(model: InboundContract) -> tuple[str, ...]:
    return tuple(name for name in SECTIONS if name in model.model_fields_set)


class Source(InboundContract):
    system: Identifier
    origin: Origin


class Person(InboundContract):
    first_names: Text
    last_name: Text
    birth_date: date | None = None
    personal_identity_code: PersonalIdentityCode | None = None
    mother_tongue: LanguageCode | None = None
    gender: Gender | None = None


class Organisation(InboundContract):
    name: Text
    business_id: BusinessId | None = None
    """None for organisations without a Finnish business ID (e.g. foreign ones)."""


class Contact(InboundContract):
    street: Text | None = None
    # Declared before postal_code: which postal-code rule applies depends on the country.
    country: CountryCode | None = None
    postal_code: str | None = None
    city: Text | None = None
    phone: Phone | None = None
    email: Email | None = None

    @field_validator("postal_code", mode="before")
    @classmethod
    def _postal_code_of_country(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            return None
        country = info.data.get("country")
        return check_postal_code(value, country if isinstance(country, str) else None)


class ContactPersonFor(InboundContract):
    customer_number: Identifier
    """The organisation's customer number."""
    employer: Text
    position: Text | None = None


class Account(InboundContract):
    username: Text


class CustomerUpserted(InboundContract):
    """``customer.upserted``: create or update a subject, section by section.

    ``kind`` rules: ``person`` and ``entrepreneur`` cannot clear ``person`` (send it ``null``);
    ``organisation`` cannot clear ``organisation``; only ``entrepreneur`` carries both; an
    ``organisation`` carries no ``person`` (its people are customers of their own with
    ``contact_person_for``). An absent section is not an error (it is left as stored); the
    registry refuses to *create* a subject without the section its kind needs.
    """

    customer_number: Identifier
    kind: SubjectKind
    source: Source
    legal_basis: LegalBasis
    person: Person | None = None
    organisation: Organisation | None = None
    contact: Contact | None = None
    contact_person_for: ContactPersonFor | None = None
    metering_points: list[Identifier] | None = None
    account: Account | None = None

    def sections_present(self) -> tuple[str, ...]:
        """Sections sent in this event (``null`` included): these replace the stored ones."""
        return _present(self)

    @model_validator(mode="after")
    def _sections_fit_kind(self) -> Self:
        sent = self.model_fields_set
        if self.kind in ("person", "entrepreneur") and "person" in sent and self.person is None:
            raise PydanticCustomError(SCHEMA, "a person or entrepreneur cannot clear person")
        if self.kind == "person" and self.organisation is not None:
            raise PydanticCustomError(SCHEMA, "kind person carries no organisation")
        if self.kind == "organisation":
            if "organisation" in sent and self.organisation is None:
                raise PydanticCustomError(SCHEMA, "an organisation cannot clear organisation")
            if self.person is not None:
                raise PydanticCustomError(SCHEMA, "kind organisation carries no person")
        return self


class CustomerRelationshipEnded(InboundContract):
    """``customer.relationship_ended``: starts the retention clocks."""

    customer_number: Identifier
    ended_at: Timestamp


class ContractUpdated(InboundContract):
    """``contract.updated``. ``valid_from``/``valid_to`` are calendar dates."""

    customer_number: Identifier
    contract_id: Identifier
    product: Text
    status: Literal["active", "ended"]
    valid_from: date
    valid_to: date | None = None
    metering_point: Identifier | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise PydanticCustomError(SCHEMA, "valid_to is before valid_from")
        return self


class ConsumptionReported(InboundContract):
    """``consumption.reported``. Periods are calendar dates, both ends inclusive."""

    customer_number: Identifier
    metering_point: Identifier
    period_start: date
    period_end: date
    energy_mwh: EnergyMwh
    annual_forecast_mwh: EnergyMwh | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.period_end < self.period_start:
            raise PydanticCustomError(SCHEMA, "period_end is before period_start")
        return self


class InteractionLogged(InboundContract):
    """``interaction.logged``."""

    customer_number: Identifier
    interaction_id: Identifier
    channel: Literal["phone", "email", "letter", "portal"]
    at: Timestamp
    summary: str


class PersonCorrection(InboundContract):
    """Rectification of ``person``: fields sent replace stored ones; absent ones stay."""

    first_names: Text | None = None
    last_name: Text | None = None
    birth_date: date | None = None
    personal_identity_code: PersonalIdentityCode | None = None
    mother_tongue: LanguageCode | None = None
    gender: Gender | None = None


class OrganisationCorrection(InboundContract):
    name: Text | None = None
    business_id: BusinessId | None = None


class ContactPersonForCorrection(InboundContract):
    customer_number: Identifier | None = None
    employer: Text | None = None
    position: Text | None = None


class Corrections(InboundContract):
    """Rectification (``dsar.submitted`` ``corrections``): the sections of ``customer.upserted``.

    Within a section only the fields sent change (``model_fields_set``); ``null`` clears one.
    """

    person: PersonCorrection | None = None
    organisation: OrganisationCorrection | None = None
    contact: Contact | None = None
    contact_person_for: ContactPersonForCorrection | None = None
    metering_points: list[Identifier] | None = None
    account: Account | None = None

    def sections_present(self) -> tuple[str, ...]:
        return _present(self)

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.sections_present():
            raise PydanticCustomError(SCHEMA, "corrections name no section")
        return self


class SubjectChanged(OutboundContract):
    """``subject.changed`` on ``registry.events.v1``: which categories changed, no values."""

    subject_id: Identifier
    customer_number: Identifier
    kind: SubjectKind
    categories: list[Category]
    origin: Origin
    changed_at: Timestamp


class SubjectErased(OutboundContract):
    """``subject.erased``: systems holding a copy of these categories erase it too."""

    subject_id: Identifier
    customer_number: Identifier
    request_id: Identifier
    categories: list[Category]
