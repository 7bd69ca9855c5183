"""parse(): every public event type, every reason code, and no personal data in the detail."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from lampo.contracts import errors
from lampo.contracts.catalog import (
    DSAR_REQUESTS,
    EVENT_TYPES,
    PRIVACY_TASKS,
    RECORDINGS_INBOUND,
    REGISTRY_INBOUND,
    TOPICS,
    dlq_topic,
    event_type_of,
    parse,
    topic_of,
)
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.errors import ContractViolation
from lampo.contracts.recordings import MAX_CHUNK_BYTES
from lampo.contracts.registry import CustomerUpserted

Example = Callable[[str], dict[str, Any]]
ROUTES = [(topic, event_type) for topic, types in EVENT_TYPES.items() for event_type in types]


def violation(topic: str, raw: bytes) -> ContractViolation:
    with pytest.raises(ContractViolation) as caught:
        parse(topic, raw)
    return caught.value


def event(event_type: str, data: dict[str, Any]) -> bytes:
    return CloudEvent.new(event_type, "urn:system:test", data).to_bytes()


def test_the_catalog_names_every_public_topic() -> None:
    assert TOPICS == (
        "registry.inbound.v1",
        "registry.events.v1",
        "billing.inbound.v1",
        "recordings.inbound.v1",
        "consent.inbound.v1",
        "consent.events.v1",
        "retention.inbound.v1",
        "dsar.requests.v1",
        "dsar.events.v1",
        "privacy.tasks.v1",
        "privacy.acks.v1",
    )
    assert len(ROUTES) == 31  # dsar.restriction_lift_notice and dsar.extended added (extensions)
    assert dlq_topic(REGISTRY_INBOUND) == "registry.inbound.v1.dlq"


@pytest.mark.parametrize(("topic", "event_type"), ROUTES)
def test_the_contract_example_of_every_event_type_parses(topic: str, event_type: str, example: Example) -> None:
    data = example(event_type)
    parsed = parse(topic, event(event_type, data))
    model = EVENT_TYPES[topic][event_type]
    assert type(parsed.data) is model
    assert parsed.topic == topic and parsed.envelope.type == event_type
    assert event_type_of(parsed.data) == event_type and topic_of(model) == topic
    # What a producer dumps reads back as the same event, with no field outside the contract.
    again = parse(topic, CloudEvent.new(event_type, "urn:lampo:test", parsed.data).to_bytes(), extra="forbid")
    assert again.data == parsed.data


@pytest.mark.parametrize(("topic", "event_type"), ROUTES)
def test_readers_ignore_new_optional_fields(topic: str, event_type: str, example: Example) -> None:
    data = example(event_type) | {"added_in_v1_1": "x"}
    assert parse(topic, event(event_type, data)).data == parse(topic, event(event_type, example(event_type))).data
    with pytest.raises(ContractViolation) as caught:
        parse(topic, event(event_type, data), extra="forbid")
    assert caught.value.reason == "schema"
    assert caught.value.detail == "data.<key>: Extra inputs are not permitted"


def test_an_unknown_topic_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        parse("nobody.inbound.v1", b"{}")


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"{not json", "Expecting property name enclosed in double quotes at line 1 column 2"),
        (b"", "Expecting value at line 1 column 1"),
        (b'\xff{"a": 1}', "not UTF-8 at byte 0"),
        (b"[1, 2]", "not a JSON object"),
        (b'"010594Y9032"', "not a JSON object"),
        (b'{"amount": NaN}', "NaN and Infinity are not JSON"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_invalid_json(raw: bytes, detail: str) -> None:
    caught = violation(REGISTRY_INBOUND, raw)
    assert (caught.reason, caught.detail) == ("invalid_json", detail)
    assert caught.envelope is None


def envelope_dict(**changes: Any) -> bytes:
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": "e1",
        "source": "urn:system:crm",
        "type": "customer.relationship_ended",
        "time": "2026-11-28T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {"customer_number": "100234", "ended_at": "2026-11-28T10:00:00Z"},
    }
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"specversion": "0.3"}, "specversion: Input should be '1.0'"),
        ({"id": ...}, "id: Field required"),
        ({"id": ""}, "id: String should have at least 1 character"),
        ({"time": "2026-11-28T10:00:00"}, "time: Input should have timezone info"),
        ({"time": 1790000000}, "time: must be an RFC 3339 date-time with a time zone, not a number"),
        ({"data": [1]}, "data: Input should be a valid dictionary"),
        ({"data": ...}, "data: Field required"),
        ({"datacontenttype": "text/xml"}, "datacontenttype: String should match pattern"),
    ],
)
def test_a_broken_envelope_is_a_schema_error(changes: dict[str, Any], detail: str) -> None:
    caught = violation(REGISTRY_INBOUND, envelope_dict(**changes))
    assert caught.reason == "schema"
    assert caught.detail.startswith(detail)


def test_envelope_extensions_and_json_parameters_are_accepted() -> None:
    parsed = parse(
        REGISTRY_INBOUND,
        envelope_dict(
            subject="100234", datacontenttype="application/json; charset=utf-8", time="2026-11-28T12:00:00+02:00"
        ),
    )
    assert parsed.envelope.model_extra == {"subject": "100234"}


def test_an_unknown_type_keeps_its_envelope() -> None:
    caught = violation(REGISTRY_INBOUND, event("customer.teleported", {"customer_number": "100234"}))
    assert caught.reason == "unknown_type"
    assert caught.detail == "type: 'customer.teleported' is not an event type of registry.inbound.v1"
    assert caught.envelope is not None and caught.envelope.type == "customer.teleported"
    # A type of another topic is unknown here too.
    assert violation(REGISTRY_INBOUND, event("consent.given", {})).reason == "unknown_type"


def test_an_odd_type_is_not_quoted() -> None:
    caught = violation(REGISTRY_INBOUND, event("maija@example.fi wants out", {}))
    assert caught.detail == "type: type is not an event type of registry.inbound.v1"


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (lambda d: d.pop("customer_number"), "data.customer_number: Field required"),
        (lambda d: d.update(kind="robot"), "data.kind: Input should be 'person', 'entrepreneur' or 'organisation'"),
        (lambda d: d.update(source={"system": "crm"}), "data.source.origin: Field required"),
        (lambda d: d.update(metering_points="MUL-1"), "data.metering_points: Input should be a valid list"),
        (lambda d: d["person"].update(gender="3"), "data.person.gender: Input should be '0', '1', '2' or '9'"),
        (lambda d: d.update(person=None), "data: a person or entrepreneur cannot clear person"),
    ],
)
def test_schema_errors_name_the_field(
    change: Callable[[dict[str, Any]], object], detail: str, example: Example
) -> None:
    data = example("customer.upserted")
    change(data)
    caught = violation(REGISTRY_INBOUND, event("customer.upserted", data))
    assert (caught.reason, caught.detail) == ("schema", detail)
    assert caught.envelope is not None  # a DSAR coordinator can still answer the sender


FIELD_CASES: list[tuple[str, str, Callable[[dict[str, Any]], object], str, str]] = [
    (
        REGISTRY_INBOUND,
        "customer.upserted",
        lambda d: d["person"].update(personal_identity_code="131052-308U"),
        "invalid_personal_identity_code",
        "data.person.personal_identity_code: check character does not match",
    ),
    (
        REGISTRY_INBOUND,
        "customer.upserted",
        lambda d: d.update(
            kind="organisation", person=None, organisation={"name": "Oy Ab", "business_id": "2077474-1"}
        ),
        "invalid_business_id",
        "data.organisation.business_id: check digit does not match",
    ),
    (
        REGISTRY_INBOUND,
        "customer.upserted",
        lambda d: d["contact"].update(postal_code="4095"),
        "invalid_postal_code",
        "data.contact.postal_code: must be five digits",
    ),
    (
        REGISTRY_INBOUND,
        "customer.upserted",
        lambda d: d["contact"].update(phone="+35812"),
        "invalid_phone",
        "data.contact.phone: is not a valid number in its numbering plan",
    ),
    (
        REGISTRY_INBOUND,
        "customer.upserted",
        lambda d: d["contact"].update(email="maija.example.fi"),
        "invalid_email",
        "data.contact.email: must contain exactly one @-sign",
    ),
    (
        REGISTRY_INBOUND,
        "customer.upserted",
        lambda d: d["person"].update(mother_tongue="fin"),
        "invalid_language",
        "data.person.mother_tongue: must be an ISO 639-1 code in lower case",
    ),
    (
        REGISTRY_INBOUND,
        "customer.upserted",
        lambda d: d["contact"].update(country="Suomi"),
        "invalid_country",
        "data.contact.country: must be an ISO 3166-1 alpha-2 code in upper case",
    ),
    (
        REGISTRY_INBOUND,
        "consumption.reported",
        lambda d: d.update(energy_mwh=1.5),
        "invalid_decimal",
        "data.energy_mwh: must be a decimal string, not a number",
    ),
    (
        "billing.inbound.v1",
        "invoice.issued",
        lambda d: d["lines"][1].update(amount_eur="-10.001"),
        "invalid_decimal",
        "data.lines[1].amount_eur: must be a decimal string in euros with at most two decimals",
    ),
    (
        RECORDINGS_INBOUND,
        "call.recorded",
        lambda d: d.update(audio_base64="not base64!"),
        "invalid_base64",
        "data.audio_base64: is not valid padded base64",
    ),
    (
        RECORDINGS_INBOUND,
        "call.recorded",
        lambda d: d.update(audio_base64=base64.b64encode(bytes(MAX_CHUNK_BYTES + 1)).decode()),
        "oversize_chunk",
        "data.audio_base64: audio exceeds 700 KiB per event; send chunks",
    ),
    (
        RECORDINGS_INBOUND,
        "call.recorded",
        lambda d: d.update(chunk_index=2, chunk_count=2),
        "chunk_out_of_range",
        "data: chunk_index must satisfy 0 <= chunk_index < chunk_count",
    ),
    (
        DSAR_REQUESTS,
        "dsar.submitted",
        lambda d: d.update(identifiers={"email": "maija@"}),
        "invalid_email",
        "data.identifiers.email: the domain part is not valid",
    ),
]


@pytest.mark.parametrize(("topic", "event_type", "change", "reason", "detail"), FIELD_CASES)
def test_field_rules_give_their_own_reason(
    topic: str, event_type: str, change: Callable[[dict[str, Any]], object], reason: str, detail: str, example: Example
) -> None:
    data = example(event_type)
    change(data)
    caught = violation(topic, event(event_type, data))
    assert (caught.reason, caught.detail) == (reason, detail)
    assert caught.headers() == {"error.reason": reason, "error.detail": detail}


def test_every_reason_code_is_produced_somewhere() -> None:
    tested = {case[3] for case in FIELD_CASES} | {"invalid_json", "schema", "unknown_type"}
    assert tested == errors.REASONS


def test_the_first_field_rule_wins_over_schema_errors(example: Example) -> None:
    data = example("customer.upserted")
    del data["legal_basis"]  # a schema error before the identity code in field order
    data["kind"] = "robot"
    data["person"]["personal_identity_code"] = "131052-308U"
    data["contact"]["email"] = "maija.example.fi"
    caught = violation(REGISTRY_INBOUND, event("customer.upserted", data))
    assert caught.reason == "invalid_personal_identity_code"
    assert caught.detail.startswith("data.person.personal_identity_code: check character does not match; ")
    assert caught.detail.endswith("and 1 more")


PERSONAL = [
    ("personal_identity_code", "131052-308U"),
    ("personal_identity_code", "010594Y9033"),
    ("email", "maija.meikalainen.example.fi"),
    ("email", "maija meikalainen@example.fi"),
    ("phone", "+358 40 99"),
    ("phone", "040 123 4567"),
]


@pytest.mark.parametrize(("field", "value"), PERSONAL)
def test_the_detail_never_contains_the_value(field: str, value: str, example: Example) -> None:
    data = example("customer.upserted")
    section = "person" if field == "personal_identity_code" else "contact"
    data[section][field] = value
    caught = violation(REGISTRY_INBOUND, event("customer.upserted", data))
    assert caught.reason.startswith("invalid_")
    for text in (caught.detail, str(caught), repr(caught)):
        assert value not in text
        assert value.replace(" ", "") not in text
    assert "meikalainen" not in caught.detail.lower()


def test_dict_keys_and_unknown_fields_from_the_input_are_not_shown(example: Example) -> None:
    data = example("privacy.ack")
    data["erased"] = {"maija@example.fi": 1, "basic": -1}
    caught = violation("privacy.acks.v1", event("privacy.ack", data))
    assert "maija" not in caught.detail
    assert "data.erased.<key>.[key]: Input should be 'basic'" in caught.detail
    assert "data.erased.basic: Input should be greater than or equal to 0" in caught.detail

    task = example("privacy.task") | {"010594Y9032": "x"}
    caught = violation_forbid(PRIVACY_TASKS, event("privacy.task", task))
    assert caught.detail == "data.<key>: Extra inputs are not permitted"


def violation_forbid(topic: str, raw: bytes) -> ContractViolation:
    with pytest.raises(ContractViolation) as caught:
        parse(topic, raw, extra="forbid")
    return caught.value


def test_round_trip_new_to_bytes_parse(example: Example) -> None:
    upsert = CustomerUpserted.model_validate(example("customer.upserted"))
    envelope = CloudEvent.new(event_type_of(upsert), "urn:system:crm", upsert)
    parsed = parse(topic_of(upsert), envelope.to_bytes())
    assert parsed.envelope == envelope
    assert parsed.data == upsert
