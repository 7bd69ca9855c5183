"""Public topics, the event types each carries, and :func:`parse` for a record value."""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ValidationError

from lampo.contracts import billing, consent, dsar, privacy, recordings, registry, retention
from lampo.contracts.categories import Category
from lampo.contracts.envelope import CloudEvent, load_json_object
from lampo.contracts.errors import (
    UNKNOWN_TYPE,
    ContractViolation,
    violation_from_validation_error,
)
from lampo.contracts.topics import (
    BILLING_INBOUND,
    CONSENT_EVENTS,
    CONSENT_INBOUND,
    DSAR_EVENTS,
    DSAR_REQUESTS,
    PRIVACY_ACKS,
    PRIVACY_TASKS,
    RECORDINGS_INBOUND,
    REGISTRY_EVENTS,
    REGISTRY_INBOUND,
    RETENTION_INBOUND,
)

DLQ_SUFFIX: Final = ".dlq"

EVENT_TYPES: Final[dict[str, dict[str, type[BaseModel]]]] = {
    REGISTRY_INBOUND: {
        "customer.upserted": registry.CustomerUpserted,
        "customer.relationship_ended": registry.CustomerRelationshipEnded,
        "contract.updated": registry.ContractUpdated,
        "consumption.reported": registry.ConsumptionReported,
        "interaction.logged": registry.InteractionLogged,
    },
    REGISTRY_EVENTS: {
        "subject.changed": registry.SubjectChanged,
        "subject.erased": registry.SubjectErased,
    },
    BILLING_INBOUND: {
        "invoice.issued": billing.InvoiceIssued,
        "payment.received": billing.PaymentReceived,
        "collection.opened": billing.CollectionOpened,
        "credit.checked": billing.CreditChecked,
    },
    RECORDINGS_INBOUND: {
        "call.recorded": recordings.CallRecorded,
        "email.archived": recordings.EmailArchived,
    },
    CONSENT_INBOUND: {
        "consent.given": consent.ConsentGiven,
        "consent.withdrawn": consent.ConsentWithdrawn,
        "objection.filed": consent.ObjectionFiled,
    },
    CONSENT_EVENTS: {
        "consent.changed": consent.ConsentChanged,
    },
    RETENTION_INBOUND: {
        "legal_hold.placed": retention.LegalHoldPlaced,
        "legal_hold.released": retention.LegalHoldReleased,
    },
    DSAR_REQUESTS: {
        "dsar.submitted": dsar.DsarSubmitted,
        "dsar.approved": dsar.DsarApproved,
        "dsar.denied": dsar.DsarDenied,
    },
    DSAR_EVENTS: {
        "dsar.accepted": dsar.DsarAccepted,
        "dsar.rejected": dsar.DsarRejected,
        "dsar.awaiting_approval": dsar.DsarAwaitingApproval,
        "dsar.completed": dsar.DsarCompleted,
        "dsar.overdue": dsar.DsarOverdue,
        "dsar.restriction_lift_notice": dsar.RestrictionLiftNotice,
        "dsar.extended": dsar.DsarExtended,
    },
    PRIVACY_TASKS: {
        "privacy.task": privacy.PrivacyTask,
    },
    PRIVACY_ACKS: {
        "privacy.ack": privacy.PrivacyAck,
    },
}
"""topic -> {CloudEvents ``type`` -> model of ``data``}. Every type belongs to one topic."""

TOPICS: Final = tuple(EVENT_TYPES)

_ROUTE_OF_MODEL: Final = {
    model: (topic, event_type) for topic, types_ in EVENT_TYPES.items() for event_type, model in types_.items()
}


def dlq_topic(topic: str) -> str:
    """Dead-letter topic of ``topic``: ``<topic>.dlq``."""
    return topic + DLQ_SUFFIX


def event_type_of(data: BaseModel | type[BaseModel]) -> str:
    """CloudEvents ``type`` of a data model (``CustomerUpserted`` -> ``customer.upserted``)."""
    return _route_of(data)[1]


def topic_of(data: BaseModel | type[BaseModel]) -> str:
    """Topic that carries a data model (``CustomerUpserted`` -> ``registry.inbound.v1``)."""
    return _route_of(data)[0]


def _route_of(data: BaseModel | type[BaseModel]) -> tuple[str, str]:
    model = data if isinstance(data, type) else type(data)
    try:
        return _ROUTE_OF_MODEL[model]
    except KeyError:
        raise KeyError(f"{model.__name__} is not an event of any public topic") from None


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """A record that meets its contract: the envelope and its validated ``data``."""

    topic: str
    envelope: CloudEvent
    data: BaseModel


def parse(topic: str, raw: bytes, *, extra: Literal["ignore", "forbid"] = "ignore") -> ParsedEvent:
    """Read a record value from ``topic`` against the public contracts.

    Raises :class:`ContractViolation` with reason ``invalid_json``, ``schema``,
    ``unknown_type`` or a field rule's own reason (``invalid_personal_identity_code``, ...;
    the first such error wins over generic schema errors). ``detail`` names the field path
    (``data.person.personal_identity_code: check character does not match``), never a value.
    Unknown fields are ignored, as the contracts may grow; ``extra="forbid"`` reports them
    (for tests of what this suite publishes). ``KeyError`` for a topic with no contract.
    """
    catalog = EVENT_TYPES.get(topic)
    if catalog is None:
        raise KeyError(f"no public contract for topic {topic!r}")
    return _parse_with(catalog, topic, raw, extra)


def parser_for(event_types: Mapping[str, type[BaseModel]]) -> Callable[[str, bytes], ParsedEvent]:
    """A parser like ``parse`` for an internal topic's own event types (same envelope, same
    dead-letter reasons), for ``Runtime.consume(..., parser=...)``."""

    def parse_internal(topic: str, raw: bytes) -> ParsedEvent:
        return _parse_with(event_types, topic, raw, "ignore")

    return parse_internal


def _parse_with(
    catalog: Mapping[str, type[BaseModel]], topic: str, raw: bytes, extra: Literal["ignore", "forbid"]
) -> ParsedEvent:
    obj = load_json_object(raw)
    try:
        envelope = CloudEvent.model_validate(obj)
    except ValidationError as exc:
        raise violation_from_validation_error(exc, prefix="", known_names=_KNOWN_NAMES) from None
    model = catalog.get(envelope.type)
    if model is None:
        raise ContractViolation(UNKNOWN_TYPE, _unknown_type_detail(topic, envelope.type), envelope=envelope)
    try:
        data = model.model_validate(envelope.data, extra=extra)
    except ValidationError as exc:
        raise violation_from_validation_error(exc, prefix="data", known_names=_KNOWN_NAMES, envelope=envelope) from None
    return ParsedEvent(topic=topic, envelope=envelope, data=data)


_SAFE_TYPE = re.compile(r"[A-Za-z0-9._-]{1,100}")


def _unknown_type_detail(topic: str, event_type: str) -> str:
    # A type name is not personal data, but it is input: quote it only if it looks like one.
    shown = f"'{event_type}'" if _SAFE_TYPE.fullmatch(event_type) else "type"
    return f"type: {shown} is not an event type of {topic}"


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def _field_names() -> frozenset[str]:
    """Every name the contracts declare: the only ``loc`` parts a detail may show as such."""
    names: set[str] = {c.value for c in Category}
    names.add("[key]")  # pydantic's marker for a dict key that failed
    seen: set[type[BaseModel]] = set()
    pending: list[type[BaseModel]] = [CloudEvent, *_ROUTE_OF_MODEL]
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            names.add(name)
            pending.extend(_models_in(field.annotation))
    return frozenset(names)


_KNOWN_NAMES: Final = _field_names()

__all__ = [
    "BILLING_INBOUND",
    "CONSENT_EVENTS",
    "CONSENT_INBOUND",
    "DLQ_SUFFIX",
    "DSAR_EVENTS",
    "DSAR_REQUESTS",
    "EVENT_TYPES",
    "PRIVACY_ACKS",
    "PRIVACY_TASKS",
    "RECORDINGS_INBOUND",
    "REGISTRY_EVENTS",
    "REGISTRY_INBOUND",
    "RETENTION_INBOUND",
    "TOPICS",
    "ParsedEvent",
    "dlq_topic",
    "event_type_of",
    "parse",
    "topic_of",
]
