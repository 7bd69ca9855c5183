"""The data categories of the privacy statement (§6): the unit of policy, access and erasure."""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """A §6 data category. A ``StrEnum``: members compare equal to their JSON strings."""

    BASIC = "basic"
    """Names, birth date, identity code, business ID, customer number, metering point, account."""
    CONTACT_PERSON = "contact_person"
    """Employer and position of an organisation's contact person."""
    CONTACT = "contact"
    """Address, phone, e-mail."""
    BILLING = "billing"
    """Invoices, payments, collection, advance estimates, damages, credit checks."""
    CUSTOMER_RELATIONSHIP = "customer_relationship"
    """Contracts, orders, authorisations, call and e-mail recordings, correspondence, marketing."""
    SERVICES = "services"
    """Orders, changes, disruptions, mobile service use, interests, cookies, derived profiles."""
    CONSUMPTION = "consumption"
    """Annual forecast, consumption reports."""
    OTHER_CONSENTED = "other_consented"
    """Anything else, only with consent."""


ALL_CATEGORIES: tuple[Category, ...] = tuple(Category)
"""Every category, in the order of the privacy statement (the default scope of a request)."""


DEFAULT_PARTICIPANT_CATEGORIES: dict[str, list[str]] = {
    "registry": ["basic", "contact_person", "contact", "customer_relationship", "services", "consumption"],
    "billing": ["billing", "basic", "contact"],
    "recordings": ["customer_relationship", "basic", "contact"],
    "consent": ["customer_relationship", "other_consented", "contact"],
}
"""Which categories each system holds (the default of ``LAMPO_PARTICIPANT_CATEGORIES``): the
coordinator plans requests with it (lampo.dsar.settings) and the privacy statement names the
systems that keep each category from it (lampo.statement). A store that keeps a copy of
another's data lists that category too; the first category of each is where its data is filed in
an access package."""
