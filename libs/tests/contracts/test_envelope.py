"""The CloudEvents envelope: creation, bytes on the wire, and reading back."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from lampo.contracts.envelope import CONTENT_TYPE, CloudEvent
from lampo.contracts.errors import ContractViolation
from lampo.contracts.registry import CustomerRelationshipEnded

ENDED = CustomerRelationshipEnded(customer_number="100234", ended_at=datetime(2026, 11, 28, 10, tzinfo=UTC))


def test_content_type() -> None:
    assert CONTENT_TYPE == "application/cloudevents+json"


def test_new_fills_id_time_and_dumps_the_model_as_json() -> None:
    before = datetime.now(UTC)
    event = CloudEvent.new("customer.relationship_ended", "urn:system:crm", ENDED)
    assert uuid.UUID(event.id).version == 4
    assert before <= event.time <= datetime.now(UTC)
    assert event.time.utcoffset() == timedelta(0)
    assert event.specversion == "1.0" and event.datacontenttype == "application/json"
    assert event.data == {"customer_number": "100234", "ended_at": "2026-11-28T10:00:00Z"}


def test_new_keeps_none_fields_and_given_id_and_time() -> None:
    helsinki = timezone(timedelta(hours=2))
    at = datetime(2026, 11, 28, 12, tzinfo=helsinki)
    data = {"customer_number": "1", "when": at, "note": None}
    event = CloudEvent.new("x.y", "urn:s", data, id="e-1", time=at)
    assert event.id == "e-1" and event.time == at
    assert event.data == {"customer_number": "1", "when": "2026-11-28T12:00:00+02:00", "note": None}


def test_new_refuses_a_naive_time() -> None:
    with pytest.raises(ValidationError):
        CloudEvent.new("x.y", "urn:s", {}, time=datetime(2026, 11, 28, 10))


def test_to_bytes_is_compact_utf8_json() -> None:
    event = CloudEvent.new("x.y", "urn:s", {"name": "Meikäläinen"}, id="e-1", time=datetime(2026, 1, 1, tzinfo=UTC))
    raw = event.to_bytes()
    assert b", " not in raw and b": " not in raw
    assert "Meikäläinen".encode() in raw
    assert json.loads(raw) == {
        "specversion": "1.0",
        "id": "e-1",
        "source": "urn:s",
        "type": "x.y",
        "time": "2026-01-01T00:00:00Z",
        "datacontenttype": "application/json",
        "data": {"name": "Meikäläinen"},
    }


def test_from_bytes_round_trips() -> None:
    event = CloudEvent.new("customer.relationship_ended", "urn:system:crm", ENDED)
    assert CloudEvent.from_bytes(event.to_bytes()) == event


def test_from_bytes_reports_contract_violations() -> None:
    with pytest.raises(ContractViolation) as caught:
        CloudEvent.from_bytes(b"nope")
    assert caught.value.reason == "invalid_json"
    with pytest.raises(ContractViolation) as caught:
        CloudEvent.from_bytes(b'{"specversion": "1.0"}')
    assert caught.value.reason == "schema"
    assert caught.value.detail.startswith("id: Field required")


def test_the_envelope_is_frozen() -> None:
    event = CloudEvent.new("x.y", "urn:s", {})
    with pytest.raises(ValidationError):
        event.id = "other"  # type: ignore[misc]
