"""The controller, as the privacy statement names it (§1-§3; DESIGN.md "The controller").

One definition for everything that names the controller: package manifests, consent receipts,
the record of processing. The defaults are the statement's; a deployment overrides any field with
``LAMPO_CONTROLLER_<FIELD>`` environment variables (``LAMPO_CONTROLLER_EMAIL=...``).
"""

from __future__ import annotations

from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict


class Controller(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LAMPO_CONTROLLER_", extra="ignore", frozen=True)

    name: str = "Muuramen Lämpö Oy"
    short_name: str = "Muuramen Lämpö"
    business_id: str = "0402810-7"
    """Y-tunnus."""
    postal_address: str = "PL 274"
    postal_code: str = "40101"
    post_office: str = "Jyväskylä"
    country: str = "FI"
    contact_person: str = "Jani Lehtonen"
    contact_title: str = "toimitusjohtaja"
    contact_title_en: str = "managing director"
    phone: str = "020 7120443"
    email: str = "jani.lehtonen@isannointitiimi.fi"
    register_name: str = "Muuramen Lämpö Oy:n asiakasrekisteri"
    register_short: str = "Asiakasrekisteri"

    @property
    def address(self) -> str:
        """``PL 274, 40101 Jyväskylä``."""
        return f"{self.postal_address}, {self.postal_code} {self.post_office}"

    @property
    def contact(self) -> str:
        """The register's contact person, as the statement names them."""
        return f"{self.contact_person}, {self.contact_title} ({self.contact_title_en}), {self.phone}, {self.email}"

    def as_dict(self) -> dict[str, Any]:
        """The controller in a package's manifest (and wherever JSON names it)."""
        return {
            "name": self.name,
            "business_id": self.business_id,
            "address": self.address,
            "country": self.country,
            "register": self.register_name,
            "contact_person": {
                "name": self.contact_person,
                "title": self.contact_title,
                "phone": self.phone,
                "email": self.email,
            },
        }

    def receipt(self) -> dict[str, Any]:
        """The controller in a consent receipt (Kantara Consent Receipt ``piiControllers`` entry)."""
        return {
            "piiController": self.name,
            "businessId": self.business_id,
            "contact": f"{self.contact_person}, {self.contact_title}",
            "address": {
                "postOfficeBoxNumber": self.postal_address,
                "postalCode": self.postal_code,
                "addressLocality": self.post_office,
                "addressCountry": self.country,
            },
            "email": self.email,
            "phone": self.phone,
        }


def controller() -> Controller:
    """The configured controller (the statement's defaults, overridden by ``LAMPO_CONTROLLER_*``)."""
    return Controller()
