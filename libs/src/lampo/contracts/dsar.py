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

from lampo.contracts._base import Identifier, InboundContract, OutboundContract, Text, Timestamp
from lampo.contracts.categories import Category
from lampo.contracts.errors import SCHEMA
from lampo.contracts.identifiers import Email, PersonalIdentityCode
from lampo.contracts.privacy import Retained
from lampo.contracts.registry import Corrections

DsarKind = Literal["access", "portability", "erasure", "rectification", "restriction", "objection"]
VerificationMethod = Literal["strong_electronic", "signed_letter", "in_person", "staff"]
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

    @model_validator(mode="after")
    def _rectification_has_corrections(self) -> Self:
        if self.kind == "rectification" and self.corrections is None:
            raise PydanticCustomError(SCHEMA, "rectification needs corrections")
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


class Package(InboundContract):
    """The access / portability package: a ZIP with ``manifest.json`` and ``data/``."""

    uri: Text
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    format: Literal["zip"] = "zip"


class DsarCompleted(OutboundContract):
    request_id: Identifier
    kind: DsarKind
    status: CompletionStatus
    due_at: Timestamp
    completed_at: Timestamp
    trace_id: str | None = None
    results: dict[Identifier, ParticipantResult]
    package: Package | None = None


class DsarOverdue(OutboundContract):
    request_id: Identifier
    due_at: Timestamp
