"""Rules of the event models beyond field formats."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from lampo.contracts.catalog import EVENT_TYPES
from lampo.contracts.categories import ALL_CATEGORIES, Category
from lampo.contracts.consent import ConsentChanged
from lampo.contracts.dsar import DsarSubmitted, Identifiers
from lampo.contracts.privacy import PrivacyAck, PrivacyTask
from lampo.contracts.recordings import MAX_CHUNK_BYTES, CallRecorded
from lampo.contracts.registry import Contact, Corrections, CustomerUpserted, SubjectChanged

Example = Callable[[str], dict[str, Any]]


def error_of(model: Any, data: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    first = caught.value.errors()[0]
    return first["type"], first["msg"]


def test_categories_are_the_privacy_statement_ones() -> None:
    assert [c.value for c in ALL_CATEGORIES] == [
        "basic",
        "contact_person",
        "contact",
        "billing",
        "customer_relationship",
        "services",
        "consumption",
        "other_consented",
    ]
    assert Category("contact") is Category.CONTACT
    assert isinstance(Category.CONTACT, str)


def test_sections_present_tells_absent_from_null(example: Example) -> None:
    data = example("customer.upserted")
    del data["account"], data["metering_points"]
    upsert = CustomerUpserted.model_validate(data)
    assert upsert.sections_present() == ("person", "organisation", "contact", "contact_person_for")
    assert upsert.organisation is None  # sent as null: clears the stored section


def test_an_update_may_leave_the_person_section_out(example: Example) -> None:
    data = example("customer.upserted")
    del data["person"]
    assert CustomerUpserted.model_validate(data).sections_present()[0] == "organisation"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "person", "person": None}, "a person or entrepreneur cannot clear person"),
        ({"kind": "entrepreneur", "person": None}, "a person or entrepreneur cannot clear person"),
        ({"kind": "person", "organisation": {"name": "Oy"}}, "kind person carries no organisation"),
        ({"kind": "organisation", "organisation": None}, "an organisation cannot clear organisation"),
        ({"kind": "organisation", "organisation": {"name": "Oy"}}, "kind organisation carries no person"),
    ],
)
def test_sections_must_fit_the_kind(changes: dict[str, Any], message: str, example: Example) -> None:
    assert error_of(CustomerUpserted, example("customer.upserted") | changes) == ("schema", message)


def test_an_entrepreneur_may_carry_an_organisation(example: Example) -> None:
    data = example("customer.upserted") | {
        "kind": "entrepreneur",
        "organisation": {"name": "Toiminimi Meikäläinen", "business_id": "2077474-0"},
    }
    assert CustomerUpserted.model_validate(data).organisation is not None
    organisation = example("customer.upserted") | {
        "kind": "organisation",
        "person": None,
        "organisation": {"name": "Muuramen Lämpö Oy", "business_id": "0402810-7"},
    }
    assert CustomerUpserted.model_validate(organisation).person is None


def test_foreign_addresses_keep_their_postal_code() -> None:
    assert Contact(country="SE", postal_code="123 45").postal_code == "123 45"
    assert Contact(postal_code="40950").postal_code == "40950"
    assert error_of(Contact, {"country": "FI", "postal_code": "123 45"})[0] == "invalid_postal_code"


def test_inbound_models_ignore_unknown_fields_outbound_refuse_them_when_built() -> None:
    contact = Contact.model_validate({"email": "maija@example.fi", "fax": "+358401234567"})
    assert not hasattr(contact, "fax")
    changed = {"customer_number": "1", "purpose": "profiling", "state": "granted"}
    assert ConsentChanged.model_validate(changed | {"effective_at": "2026-11-28T10:00:00Z"})
    with pytest.raises(ValidationError) as caught:
        ConsentChanged.model_validate(changed | {"effective_at": "2026-11-28T10:00:00Z", "efective_at": "typo"})
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_models_are_frozen(example: Example) -> None:
    upsert = CustomerUpserted.model_validate(example("customer.upserted"))
    with pytest.raises(ValidationError):
        upsert.kind = "organisation"  # type: ignore[misc]


def test_categories_in_outbound_events_are_enum_members_and_json_strings(example: Example) -> None:
    notice = SubjectChanged.model_validate(example("subject.changed"))
    assert notice.categories == [Category.BASIC, Category.CONTACT]
    assert notice.model_dump(mode="json")["categories"] == ["basic", "contact"]


def test_call_chunks(example: Example) -> None:
    call = CallRecorded.model_validate(example("call.recorded"))
    assert call.audio() == b"OggS-synthetic-audio"
    single = example("call.recorded")
    del single["chunk_index"], single["chunk_count"]
    assert CallRecorded.model_validate(single).chunk_count is None
    for index, count in [(-1, 2), (0, 0), (3, 2), (None, 2), (1, None)]:
        bad = example("call.recorded") | {"chunk_index": index, "chunk_count": count}
        assert error_of(CallRecorded, bad)[0] == "chunk_out_of_range"


def test_audio_size_limit_is_700_kib_decoded(example: Example) -> None:
    exact = base64.b64encode(bytes(MAX_CHUNK_BYTES)).decode()
    assert CallRecorded.model_validate(example("call.recorded") | {"audio_base64": exact})
    over = base64.b64encode(bytes(MAX_CHUNK_BYTES + 1)).decode()
    assert error_of(CallRecorded, example("call.recorded") | {"audio_base64": over})[0] == "oversize_chunk"
    for bad in ["", "QUJD\n", "QUJ", "QU_D", "QUJD====", "QUJD=", "QR==", "QUJDäö=="]:
        assert error_of(CallRecorded, example("call.recorded") | {"audio_base64": bad})[0] == "invalid_base64"


def test_a_request_needs_an_identifier_in_a_valid_format() -> None:
    assert error_of(Identifiers, {}) == ("schema", "needs customer_number, personal_identity_code or email")
    assert Identifiers(personal_identity_code="010594Y9032").personal_identity_code == "010594Y9032"
    assert error_of(Identifiers, {"personal_identity_code": "010594-9033"})[0] == "invalid_personal_identity_code"
    assert error_of(Identifiers, {"email": "x@"})[0] == "invalid_email"


def test_a_request_without_verification_is_left_to_the_coordinator(example: Example) -> None:
    data = example("dsar.submitted")
    data["verification"] = None
    assert DsarSubmitted.model_validate(data).verification is None
    del data["verification"]
    assert DsarSubmitted.model_validate(data).verification is None


def test_rectification_carries_corrections(example: Example) -> None:
    data = example("dsar.submitted") | {"kind": "rectification"}
    assert error_of(DsarSubmitted, data) == ("schema", "corrections: required for a rectification")
    data["corrections"] = {"contact": {"email": "new@example.fi"}}
    request = DsarSubmitted.model_validate(data)
    assert request.corrections is not None and request.corrections.sections_present() == ("contact",)
    assert request.corrections.contact is not None
    assert request.corrections.contact.model_fields_set == {"email"}
    assert error_of(Corrections, {}) == ("schema", "corrections name no section")
    assert Corrections.model_validate({"person": {"mother_tongue": "sv"}}).person is not None


def test_categories_narrow_a_request(example: Example) -> None:
    data = example("dsar.submitted") | {"categories": ["contact", "consumption"]}
    assert DsarSubmitted.model_validate(data).categories == [Category.CONTACT, Category.CONSUMPTION]
    assert error_of(DsarSubmitted, data | {"categories": ["everything"]})[0] == "enum"


def test_participant_protocol_extensions(example: Example) -> None:
    task = PrivacyTask.model_validate(example("privacy.task") | {"kind": "access", "result_key": "a2V5"})
    assert task.result_key == "a2V5"
    assert PrivacyTask.model_validate(example("privacy.task")).result_key is None
    ack = PrivacyAck.model_validate(example("privacy.ack") | {"result": "c2VhbGVk"})
    assert ack.result == "c2VhbGVk"
    minimal = {k: v for k, v in example("privacy.ack").items() if k not in ("erased", "retained", "error")}
    assert PrivacyAck.model_validate(minimal).erased == {}
    assert error_of(PrivacyTask, example("privacy.task") | {"attempt": 0})[0] == "greater_than_equal"


def test_every_event_model_has_a_json_schema_for_the_asyncapi_document() -> None:
    for types in EVENT_TYPES.values():
        for model in types.values():
            for mode in ("validation", "serialization"):
                schema = model.model_json_schema(mode=mode)
                assert schema["type"] == "object" and schema["properties"]


def test_a_logged_validation_error_does_not_show_the_value(example: Example) -> None:
    data = example("customer.upserted")
    data["person"]["personal_identity_code"] = "131052-308U"
    data["contact"]["email"] = "maija.example.fi"
    with pytest.raises(ValidationError) as caught:
        CustomerUpserted.model_validate(data)
    assert "131052-308U" not in str(caught.value)
    assert "maija.example.fi" not in str(caught.value)


def test_each_kind_carries_only_what_it_needs(example: Example) -> None:
    base = example("dsar.submitted")
    objection = base | {"kind": "objection"}
    assert error_of(DsarSubmitted, objection) == ("schema", "scope: required for an objection")
    assert error_of(DsarSubmitted, objection | {"scope": "everything"})[0] == "literal_error"
    assert DsarSubmitted.model_validate(objection | {"scope": "profiling"}).scope == "profiling"
    assert error_of(DsarSubmitted, base | {"kind": "access", "scope": "profiling"}) == (
        "schema",
        "scope: only an objection carries a scope",
    )
    assert DsarSubmitted.model_validate(base | {"kind": "restriction", "lift": True}).lift is True
    assert error_of(DsarSubmitted, base | {"kind": "erasure", "lift": True}) == (
        "schema",
        "lift: only a restriction can be lifted",
    )
    wrong = base | {"kind": "access", "corrections": {"contact": {"email": "new@example.fi"}}}
    assert error_of(DsarSubmitted, wrong) == ("schema", "corrections: only a rectification carries corrections")
