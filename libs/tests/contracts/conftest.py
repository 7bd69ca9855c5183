"""One valid ``data`` per public event type, shaped like the examples in CONTRACTS.md.

Synthetic data only: identity codes in the test range 900-999, e-mail at example.fi.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from typing import Any

import pytest

from lampo.contracts.envelope import CloudEvent

REQUEST_ID = "9b2e6f0c-4a5e-4f7a-9d43-1c2b3a4d5e6f"
SUBJECT_ID = "5f0c2d4e-1111-4222-8333-944455566677"

EXAMPLES: dict[str, dict[str, Any]] = {
    "customer.upserted": {
        "customer_number": "100234",
        "kind": "person",
        "source": {"system": "crm", "origin": "subject"},
        "legal_basis": "contract",
        "person": {
            "first_names": "Maija Liisa",
            "last_name": "Meikäläinen",
            "birth_date": "1994-05-01",
            "personal_identity_code": "010594Y9032",
            "mother_tongue": "fi",
            "gender": "2",
        },
        "organisation": None,
        "contact": {
            "street": "Virastotie 8",
            "postal_code": "40950",
            "city": "Muurame",
            "country": "FI",
            "phone": "+358401234567",
            "email": "maija@example.fi",
        },
        "contact_person_for": None,
        "metering_points": ["MUL-000123"],
        "account": {"username": "maija.m"},
    },
    "customer.relationship_ended": {"customer_number": "100234", "ended_at": "2026-11-28T10:00:00Z"},
    "contract.updated": {
        "customer_number": "100234",
        "contract_id": "C-2026-001",
        "product": "Kaukolämpö perus",
        "status": "active",
        "valid_from": "2026-01-01",
        "valid_to": None,
        "metering_point": "MUL-000123",
    },
    "consumption.reported": {
        "customer_number": "100234",
        "metering_point": "MUL-000123",
        "period_start": "2026-10-01",
        "period_end": "2026-10-31",
        "energy_mwh": "1.234",
        "annual_forecast_mwh": "18.5",
    },
    "interaction.logged": {
        "customer_number": "100234",
        "interaction_id": "INT-77",
        "channel": "phone",
        "at": "2026-11-28T10:00:00+02:00",
        "summary": "Asked about the new tariff.",
    },
    "subject.changed": {
        "subject_id": SUBJECT_ID,
        "customer_number": "100234",
        "kind": "person",
        "categories": ["basic", "contact"],
        "origin": "subject",
        "changed_at": "2026-11-28T10:00:00Z",
    },
    "subject.erased": {
        "subject_id": SUBJECT_ID,
        "customer_number": "100234",
        "request_id": REQUEST_ID,
        "categories": ["contact", "consumption"],
    },
    "invoice.issued": {
        "customer_number": "100234",
        "invoice_number": "INV-2026-0042",
        "issued_at": "2026-11-01T08:00:00Z",
        "due_date": "2026-11-21",
        "total_eur": "132.40",
        "lines": [{"text": "Energy", "amount_eur": "142.40"}, {"text": "Credit", "amount_eur": "-10.00"}],
    },
    "payment.received": {
        "customer_number": "100234",
        "invoice_number": "INV-2026-0042",
        "paid_at": "2026-11-20T12:00:00Z",
        "amount_eur": "132.40",
    },
    "collection.opened": {
        "customer_number": "100234",
        "invoice_number": "INV-2026-0042",
        "agency": "Perintä Oy",
        "opened_at": "2026-12-30T09:00:00Z",
    },
    "credit.checked": {
        "customer_number": "100234",
        "checked_at": "2026-01-02T09:00:00Z",
        "provider": "Luottotieto Oy",
        "result": "no_payment_defaults",
    },
    "call.recorded": {
        "customer_number": "100234",
        "recording_id": "REC-1",
        "started_at": "2026-11-28T09:00:00Z",
        "duration_s": 125,
        "media_type": "audio/ogg",
        "audio_base64": base64.b64encode(b"OggS-synthetic-audio").decode(),
        "chunk_index": 0,
        "chunk_count": 2,
    },
    "email.archived": {
        "customer_number": "100234",
        "message_id": "<abc123@mail.example.fi>",
        "at": "2026-11-28T09:00:00Z",
        "subject": "Laskusta",
        "body_text": "Hei, kysyisin laskusta.",
    },
    "consent.given": {
        "customer_number": "100234",
        "purpose": "profiling",
        "channel": "portal",
        "at": "2026-11-28T09:00:00Z",
    },
    "consent.withdrawn": {
        "customer_number": "100234",
        "purpose": "direct_marketing",
        "channel": "phone",
        "at": "2026-11-28T09:00:00Z",
    },
    "objection.filed": {"customer_number": "100234", "scope": "profiling", "at": "2026-11-28T09:00:00Z"},
    "consent.changed": {
        "customer_number": "100234",
        "purpose": "profiling",
        "state": "withdrawn",
        "effective_at": "2026-11-28T09:00:00Z",
    },
    "legal_hold.placed": {
        "hold_id": "HOLD-1",
        "customer_number": "100234",
        "categories": [],
        "case_reference": "R 26/1234",
        "authority": "Jyväskylän käräjäoikeus",
        "placed_at": "2026-11-28T09:00:00Z",
    },
    "legal_hold.released": {"hold_id": "HOLD-1", "customer_number": "100234", "released_at": "2027-03-01T09:00:00Z"},
    "dsar.submitted": {
        "request_id": REQUEST_ID,
        "kind": "erasure",
        "identifiers": {"customer_number": "100234"},
        "verification": {
            "method": "strong_electronic",
            "verified_by": "portal",
            "verified_at": "2026-11-28T09:59:00Z",
        },
        "received_at": "2026-11-28T09:58:00Z",
        "channel": "portal",
    },
    "dsar.approved": {"request_id": REQUEST_ID, "approved_by": "md", "approved_at": "2026-11-28T11:00:00Z"},
    "dsar.denied": {"request_id": REQUEST_ID, "denied_by": "md", "reason": "pending court case"},
    "dsar.accepted": {
        "request_id": REQUEST_ID,
        "kind": "erasure",
        "due_at": "2026-12-28T09:58:00Z",
        "participants": ["registry", "billing", "recordings"],
    },
    "dsar.rejected": {"request_id": REQUEST_ID, "reason": "unverified", "detail": "verification is missing"},
    "dsar.awaiting_approval": {"request_id": REQUEST_ID, "kind": "erasure"},
    "dsar.completed": {
        "request_id": REQUEST_ID,
        "kind": "erasure",
        "status": "completed_with_retention",
        "due_at": "2026-12-28T09:58:00Z",
        "completed_at": "2026-11-28T09:58:02Z",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "results": {
            "registry": {
                "status": "done",
                "erased": {"basic": 1, "contact": 1, "consumption": 12},
                "retained": [],
            },
            "billing": {
                "status": "done",
                "erased": {"billing": 2},
                "retained": [
                    {"category": "billing", "items": 6, "legal_basis": "Accounting Act 2:10", "until": "2032-12-31"}
                ],
            },
            "recordings": {"status": "done", "erased": {"customer_relationship": 3}, "retained": []},
        },
        "package": None,
    },
    "dsar.overdue": {"request_id": REQUEST_ID, "due_at": "2026-12-28T09:58:00Z"},
    "dsar.restriction_lift_notice": {
        "request_id": REQUEST_ID,
        "kind": "restriction",
        "lift_at": "2026-11-28T10:05:00Z",
    },
    "dsar.extended": {
        "request_id": REQUEST_ID,
        "kind": "access",
        "due_at": "2027-02-28T09:58:00Z",
        "reason": "Many requests at once: the answer needs more time.",
        "extended_at": "2026-12-01T10:00:00Z",
    },
    "privacy.task": {
        "request_id": REQUEST_ID,
        "task_id": f"{REQUEST_ID}/registry/1",
        "participant": "registry",
        "kind": "erasure",
        "subject": {"subject_id": SUBJECT_ID, "customer_numbers": ["100234"]},
        "categories": ["basic", "contact"],
        "attempt": 1,
        "deadline": "2026-12-28T09:58:00Z",
    },
    "privacy.ack": {
        "request_id": REQUEST_ID,
        "task_id": f"{REQUEST_ID}/registry/1",
        "participant": "registry",
        "status": "done",
        "erased": {"basic": 1, "contact": 1},
        "retained": [],
        "error": None,
    },
}


@pytest.fixture
def example() -> Callable[[str], dict[str, Any]]:
    """A fresh, mutable copy of the example ``data`` of an event type."""
    return lambda event_type: copy.deepcopy(EXAMPLES[event_type])


def record(event_type: str, data: dict[str, Any]) -> bytes:
    """A record value as another company system would send it."""
    return CloudEvent.new(event_type, "urn:system:test", data).to_bytes()


@pytest.fixture
def as_record() -> Callable[[str, dict[str, Any]], bytes]:
    return record
