"""Retention reads five busy topics of other services only for the few event types that start a
clock (issue 17: it spent ~9 % of the suite's CPU in a burst it has no part in). A record plainly
of another type is passed over before parsing, tracing, the inbox and a transaction; anything it
cannot read goes the whole way, so the parser still counts it. What it does read still claims
its inbox row: replayed after an erasure, a record must not start the subject's clocks again."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from lampo.contracts.catalog import BILLING_INBOUND, RECORDINGS_INBOUND, REGISTRY_EVENTS, REGISTRY_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.retention.app import build, observing_selector
from lampo.testing import unique

from .conftest import retention_settings


def record(topic: str, value: bytes) -> ConsumerRecord:  # type: ignore[type-arg]
    return ConsumerRecord(topic, 0, 0, 0, 0, None, value, None, 0, len(value), ())


def event(event_type: str) -> bytes:
    return CloudEvent.new(event_type, "urn:system:crm", {"customer_number": "100234"}).to_bytes()


def test_a_record_of_a_type_retention_does_not_need_is_passed_over() -> None:
    select = observing_selector(REGISTRY_INBOUND, frozenset({"customer.relationship_ended"}))
    assert select is not None
    assert select(record(REGISTRY_INBOUND, event("customer.relationship_ended")))
    for other in ("customer.upserted", "contract.updated", "consumption.reported", "interaction.logged"):
        assert not select(record(REGISTRY_INBOUND, event(other))), other
    assert select(record(REGISTRY_INBOUND, b"{not json"))  # counted by the parser, not skipped here
    assert select(record(REGISTRY_INBOUND, b'{"type": 7}'))


def test_a_topic_whose_every_type_is_wanted_has_no_selector() -> None:
    assert observing_selector(RECORDINGS_INBOUND, frozenset({"call.recorded", "email.archived"})) is None


def test_the_observing_consumers_pass_over_what_they_do_not_need() -> None:
    service = build(retention_settings(database=unique("test_retention_unused")))
    consumers = {c.topic: c for c in service.runtime.consumers if c.name == f"retention:{c.topic}"}
    assert set(consumers) == {
        REGISTRY_EVENTS,
        REGISTRY_INBOUND,
        BILLING_INBOUND,
        RECORDINGS_INBOUND,
        "consent.events.v1",
    }
    assert consumers[REGISTRY_INBOUND]._select is not None and consumers[BILLING_INBOUND]._select is not None
