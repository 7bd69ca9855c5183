"""Errors of the registry. Each rejection carries the dead-letter reason it maps to."""

from __future__ import annotations

from lampo.messaging.consumer import Rejected


class RegistryRejected(Rejected):
    """Root of the registry's rejections of well-formed events."""


class UnknownCustomer(RegistryRejected):
    def __init__(self, field: str) -> None:
        super().__init__("unknown_customer", f"{field}: no customer with this number")


class UnknownOrganisation(RegistryRejected):
    def __init__(self) -> None:
        super().__init__(
            "unknown_organisation", "data.contact_person_for.customer_number: no organisation with this customer number"
        )


class UnknownMeteringPoint(RegistryRejected):
    def __init__(self) -> None:
        super().__init__("unknown_metering_point", "data.metering_point: not a metering point of this customer")


class MissingSection(RegistryRejected):
    def __init__(self, kind: str, section: str) -> None:
        super().__init__("missing_required_section", f"data.{section}: required to create a subject of kind {kind}")
