"""Synthetic events that start retention clocks, as the other systems publish them."""

from __future__ import annotations

import base64
from datetime import datetime

from lampo.contracts.catalog import (
    BILLING_INBOUND,
    CONSENT_EVENTS,
    RECORDINGS_INBOUND,
    REGISTRY_EVENTS,
    REGISTRY_INBOUND,
)
from lampo.contracts.envelope import CloudEvent
from lampo.testing import Producer

ALL_REGISTRY = [
    "basic",
    "contact_person",
    "contact",
    "customer_relationship",
    "services",
    "consumption",
    "other_consented",
]


def iso(at: datetime) -> str:
    return at.isoformat()


async def subject_changed(
    p: Producer, customer: str, subject: str, at: datetime, categories: list[str] | None = None
) -> None:
    data = {
        "subject_id": subject,
        "customer_number": customer,
        "kind": "person",
        "categories": categories or ["basic", "contact"],
        "origin": "subject",
        "changed_at": iso(at),
    }
    await p.send(REGISTRY_EVENTS, subject, CloudEvent.new("subject.changed", "urn:lampo:registry", data))


async def relationship_ended(p: Producer, customer: str, at: datetime) -> None:
    data = {"customer_number": customer, "ended_at": iso(at)}
    await p.send(REGISTRY_INBOUND, customer, CloudEvent.new("customer.relationship_ended", "urn:system:crm", data))


async def invoice_issued(p: Producer, customer: str, at: datetime, number: str = "INV-1") -> None:
    data = {
        "customer_number": customer,
        "invoice_number": number,
        "issued_at": iso(at),
        "due_date": at.date().isoformat(),
        "total_eur": "120.00",
        "lines": [{"text": "Kaukolämpö", "amount_eur": "120.00"}],
    }
    await p.send(BILLING_INBOUND, customer, CloudEvent.new("invoice.issued", "urn:system:billing", data))


async def call_recorded(p: Producer, customer: str, at: datetime, recording: str = "REC-1") -> None:
    data = {
        "customer_number": customer,
        "recording_id": recording,
        "started_at": iso(at),
        "duration_s": 12.5,
        "media_type": "audio/ogg",
        "audio_base64": base64.b64encode(b"synthetic audio").decode(),
    }
    await p.send(RECORDINGS_INBOUND, customer, CloudEvent.new("call.recorded", "urn:system:pbx", data))


async def consent_changed(p: Producer, customer: str, at: datetime, state: str) -> None:
    data = {"customer_number": customer, "purpose": "direct_marketing", "state": state, "effective_at": iso(at)}
    await p.send(CONSENT_EVENTS, customer, CloudEvent.new("consent.changed", "urn:lampo:consent", data))
