"""``dsar.requests.v1`` (requests and approvals, inbound) and ``dsar.events.v1`` (outbound).

``verification`` may be absent or null: the coordinator answers such a request itself with
``dsar.rejected`` (``unverified``) rather than dead-lettering it. A request that breaks the
contract raises ``ContractViolation`` whose ``envelope`` is still available, so the
coordinator can answer ``dsar.rejected`` (``invalid``) when a ``request_id`` can be read.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, NonNegativeInt, model_validator
from pydantic_core import PydanticCustomError

from lampo.contracts import kinds
from lampo.contracts._base import Identifier, InboundContract, OutboundContract, Text, Timestamp
from lampo.contracts.categories import Category
from lampo.contracts.consent import ObjectionScope
from lampo.contracts.errors import SCHEMA
from lampo.contracts.identifiers import Email, PersonalIdentityCode
from lampo.contracts.privacy import Effect, Retained
from lampo.contracts.registry import Corrections

DsarKind = kinds.DsarKind  # defined without models in lampo.contracts.kinds (settings use it)
VerificationMethod = Literal["strong_electronic", "email_code", "signed_letter", "in_person", "staff"]
RejectReason = Literal["unverified", "no_match", "invalid", "denied"]
CompletionStatus = Literal["completed", "completed_with_retention", "failed"]


class Identifiers(InboundContract):
    """How the requester is found: at least one of the three."""

    customer_number: Identifier | None = None
    personal_identity_code: PersonalIdentityCode | None = None
    email: Email | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Self:
        if (self.customer_number, self.personal_identity_code, self.email) == (None, None, None):
            raise PydanticCustomError(SCHEMA, "needs customer_number, personal_identity_code or email")
        return self


class Verification(InboundContract):
    method: VerificationMethod
    verified_by: Text
    verified_at: Timestamp


class DsarSubmitted(InboundContract):
    """``dsar.submitted``. ``categories`` None means every category."""

    request_id: Identifier
    kind: DsarKind
    identifiers: Identifiers
    verification: Verification | None = None
    received_at: Timestamp
    channel: Text
    corrections: Corrections | None = None
    categories: list[Category] | None = None
    scope: ObjectionScope | None = None
    """Objection: what the subject objects to (required for that kind)."""
    lift: bool = False
    """Restriction: lift a standing restriction instead of placing one (Art. 18(3))."""

    @model_validator(mode="after")
    def _kind_has_what_it_needs(self) -> Self:
        if self.kind == "rectification" and self.corrections is None:
            raise PydanticCustomError(SCHEMA, "corrections: required for a rectification")
        if self.kind != "rectification" and self.corrections is not None:
            raise PydanticCustomError(SCHEMA, "corrections: only a rectification carries corrections")
        if self.kind == "objection" and self.scope is None:
            raise PydanticCustomError(SCHEMA, "scope: required for an objection")
        if self.kind != "objection" and self.scope is not None:
            raise PydanticCustomError(SCHEMA, "scope: only an objection carries a scope")
        if self.lift and self.kind != "restriction":
            raise PydanticCustomError(SCHEMA, "lift: only a restriction can be lifted")
        return self


class DsarApproved(InboundContract):
    """``dsar.approved`` for a request awaiting approval."""

    request_id: Identifier
    approved_by: Text
    approved_at: Timestamp


class DsarDenied(InboundContract):
    """``dsar.denied``: the coordinator then publishes ``dsar.rejected`` (``denied``)."""

    request_id: Identifier
    denied_by: Text
    reason: Text


class DsarAccepted(OutboundContract):
    request_id: Identifier
    kind: DsarKind
    due_at: Timestamp
    participants: list[Identifier]


class DsarRejected(OutboundContract):
    request_id: Identifier
    reason: RejectReason
    detail: str | None = None
    """What failed, naming fields, never their values."""


class DsarAwaitingApproval(OutboundContract):
    request_id: Identifier
    kind: DsarKind


class ParticipantResult(InboundContract):
    status: Literal["done", "failed"]
    erased: dict[Category, NonNegativeInt] = Field(default_factory=dict)
    retained: list[Retained] = Field(default_factory=list)
    error: str | None = None
    """Why the participant failed (extension; absent when done)."""
    effects: list[Effect] = Field(default_factory=list)
    """Extension: what the participant did (rectified, restricted, objection recorded...) or may
    not do and why; see ``lampo.contracts.privacy.Effect``."""


class Package(InboundContract):
    """The access / portability package: a ZIP with ``manifest.json`` and ``data/``."""

    uri: Text
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    format: Literal["zip"] = "zip"
    expires_at: Timestamp | None = None
    """When the package is destroyed and its address answers 410."""


class UnreachableCopy(OutboundContract):
    """Extension: copies of the subject's data that an erasure cannot reach, and when they are
    gone by themselves (records in the inbound topics and their dead-letter topics)."""

    where: Text
    until: Timestamp


class DsarCompleted(OutboundContract):
    request_id: Identifier
    kind: DsarKind
    status: CompletionStatus
    due_at: Timestamp
    completed_at: Timestamp
    trace_id: str | None = None
    results: dict[Identifier, ParticipantResult]
    package: Package | None = None
    lift_notice_at: Timestamp | None = None
    """Extension: a restriction lift's notice to the subject went out then, before any store
    lifted it (``dsar.restriction_lift_notice``, Art. 18(3))."""
    unreachable_copies: list[UnreachableCopy] = Field(default_factory=list)
    """Extension, for an erasure: the copies it cannot reach and when they expire, so the
    report is honest about them."""


class RestrictionLiftNotice(OutboundContract):
    """``dsar.restriction_lift_notice`` (extension): the subject is told that a restriction is to
    be lifted (Art. 18(3)), before the stores are asked to lift it at ``lift_at``. The subject's
    channel turns it into a message to the person; it carries no personal data."""

    request_id: Identifier
    kind: Literal["restriction"]
    lift_at: Timestamp


class DsarExtended(OutboundContract):
    """``dsar.extended`` (extension): the deadline was extended, once, by two further months
    (GDPR Art. 12(3)); the subject's channel tells the person, with the reason. ``reason`` is the
    controller's explanation of why more time is needed, written for the subject."""

    request_id: Identifier
    kind: DsarKind
    due_at: Timestamp
    reason: Text
    extended_at: Timestamp


class DsarOverdue(OutboundContract):
    request_id: Identifier
    due_at: Timestamp
