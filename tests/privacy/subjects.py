"""Synthetic data subjects of the leak search, each with strings found nowhere else: random
syllable names, an identity code in the 900-999 test range, an e-mail at example.fi sent in mixed
case, a mobile number (E.164 in the contact, the national form in free text), a street of its own."""

from __future__ import annotations

import base64
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lampo.contracts.envelope import CloudEvent
from lampo.testing import synthetic_identity_code

_rng = random.Random()


def _name() -> str:
    syllables = ["ka", "lo", "mi", "ve", "tu", "sa", "ri", "no", "hel", "jo", "pa", "ilo", "ur", "mä", "kö"]
    return "".join(_rng.choice(syllables) for _ in range(4)).capitalize()


@dataclass
class Subject:
    label: str
    kind: str  # person, entrepreneur, organisation
    number: str = field(default_factory=lambda: f"prv{uuid.uuid4().hex[:8]}")
    n: int = field(default_factory=lambda: _rng.randint(30_000, 36_000))
    first_names: str = field(default_factory=lambda: f"{_name()} {_name()}")
    last_name: str = field(default_factory=_name)
    local_phone: str = field(default_factory=lambda: f"040 {_rng.randint(100, 999)} {_rng.randint(1000, 9999)}")
    street: str = field(default_factory=lambda: f"{_name()}ntie {_rng.randint(2, 99)} B {_rng.randint(1, 40)}")
    organisation_name: str = field(default_factory=lambda: f"{_name()} Oy")
    contact_for: Subject | None = None

    @property
    def identity_code(self) -> str:
        return synthetic_identity_code(self.n)

    @property
    def email(self) -> str:
        return f"{self.first_names.split()[0]}.{self.last_name}@Example.FI"

    @property
    def e164_phone(self) -> str:
        return "+358" + self.local_phone.replace(" ", "")[1:]

    def needles(self) -> dict[str, list[str]]:
        """What must not leak, by kind, in the forms it may take (as sent and normalised)."""
        if self.kind == "organisation":
            return {}  # an organisation's own data is not personal data
        first, second = self.first_names.split()
        return {
            "identity code": [self.identity_code, self.identity_code.lower()],
            "name": [self.first_names, first, second, self.last_name, f"{first} {self.last_name}"],
            "e-mail": [self.email, self.email.lower(), self.email.split("@")[0], self.email.split("@")[0].lower()],
            "phone": [self.local_phone, self.local_phone.replace(" ", ""), self.e164_phone, self.e164_phone[1:]],
            "street address": [self.street],
        }

    def upserted(self) -> CloudEvent:
        data: dict[str, Any] = {
            "customer_number": self.number,
            "kind": self.kind,
            "source": {"system": "crm", "origin": "subject"},
            "legal_basis": "contract",
            "contact": {
                "street": self.street,
                "postal_code": "40950",
                "city": "Muurame",
                "country": "FI",
                "phone": self.e164_phone,  # the contract takes E.164; free text below has the local form
                "email": self.email,
            },
            "metering_points": [f"MUL-{self.n:06d}"],
        }
        if self.kind != "organisation":
            data["person"] = {
                "first_names": self.first_names,
                "last_name": self.last_name,
                "birth_date": None,
                "personal_identity_code": self.identity_code,
                "mother_tongue": "fi",
                "gender": "2",
            }
            data["account"] = {"username": f"{self.first_names.split()[0].lower()}.{self.n}"}
        if self.kind in ("entrepreneur", "organisation"):
            data["organisation"] = {"name": self.organisation_name, "business_id": None}
        if self.contact_for is not None:
            data["contact_person_for"] = {
                "customer_number": self.contact_for.number,
                "employer": self.contact_for.organisation_name,
                "position": "isännöitsijä",
            }
            data["metering_points"] = []
        return CloudEvent.new("customer.upserted", "urn:system:crm", data)

    def registry_events(self) -> list[CloudEvent]:
        """A contract and a month's consumption on the subject's metering point (none for a
        contact person, who has no metering point), and a logged call."""
        now = datetime.now(UTC)
        events = [
            CloudEvent.new(
                "contract.updated",
                "urn:system:crm",
                {
                    "customer_number": self.number,
                    "contract_id": f"C-{self.number}",
                    "product": "Kaukolämpö perus",
                    "status": "active",
                    "valid_from": "2026-01-01",
                    "valid_to": None,
                    "metering_point": f"MUL-{self.n:06d}",
                },
            ),
            CloudEvent.new(
                "consumption.reported",
                "urn:system:metering",
                {
                    "customer_number": self.number,
                    "metering_point": f"MUL-{self.n:06d}",
                    "period_start": "2026-10-01",
                    "period_end": "2026-10-31",
                    "energy_mwh": "1.234",
                    "annual_forecast_mwh": "18.5",
                },
            ),
            CloudEvent.new(
                "interaction.logged",
                "urn:system:crm",
                {
                    "customer_number": self.number,
                    "interaction_id": f"INT-{uuid.uuid4().hex[:6]}",
                    "channel": "phone",
                    "at": now,
                    # free text as a service desk writes it: personal data inside
                    "summary": f"{self.first_names} soitti numerosta {self.local_phone}, uusi osoite {self.street}.",
                },
            ),
        ]
        return events[2:] if self.contact_for is not None else events

    def invoice(self) -> CloudEvent:
        now = datetime.now(UTC)
        return CloudEvent.new(
            "invoice.issued",
            "urn:system:billing",
            {
                "customer_number": self.number,
                "invoice_number": f"INV-{uuid.uuid4().hex[:8]}",
                "issued_at": now,
                "due_date": (now + timedelta(days=14)).date(),
                "total_eur": "120.50",
                "lines": [{"text": "Kaukolämpö 11/2026", "amount_eur": "120.50"}],
            },
        )

    def recordings(self) -> list[CloudEvent]:
        now = datetime.now(UTC)
        audio = b"RIFF" + _rng.randbytes(2_000)
        return [
            CloudEvent.new(
                "call.recorded",
                "urn:system:telephony",
                {
                    "customer_number": self.number,
                    "recording_id": f"rec-{uuid.uuid4().hex[:8]}",
                    "started_at": now,
                    "duration_s": 42,
                    "media_type": "audio/wav",
                    "audio_base64": base64.b64encode(audio).decode(),
                },
            ),
            CloudEvent.new(
                "email.archived",
                "urn:system:mail",
                {
                    "customer_number": self.number,
                    "message_id": f"<{uuid.uuid4().hex[:10]}@mail.example.fi>",
                    "at": now,
                    "subject": f"Osoitteenmuutos {self.last_name}",
                    "body_text": f"Hei, olen {self.first_names} {self.last_name} ({self.identity_code}), "
                    f"uusi osoitteeni on {self.street}. Puh. {self.local_phone}, {self.email}",
                },
            ),
        ]

    def consent(self) -> CloudEvent:
        return CloudEvent.new(
            "consent.given",
            "urn:system:portal",
            {"customer_number": self.number, "purpose": "profiling", "channel": "portal", "at": datetime.now(UTC)},
        )
