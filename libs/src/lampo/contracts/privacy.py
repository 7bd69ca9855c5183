"""The participant protocol: ``privacy.tasks.v1`` (coordinator -> participant) and
``privacy.acks.v1`` (participant -> coordinator).

Extensions to CONTRACTS.md (optional fields, so older readers are unaffected):

* ``PrivacyTask.result_key``: for ``access`` tasks, the base64 X25519 public key of this
  request; the participant seals its data to it (the private key is destroyed once the
  package is built), so personal data crosses Kafka only encrypted per request.
* ``PrivacyAck.result``: the sealed access result (base64), ``None`` for other kinds.
* ``PrivacyTask.corrections``: for ``rectification`` tasks, the corrections from the request
  (the contract's task has no other place for them).
* ``PrivacyTask.scope`` (objection) and ``PrivacyTask.lift`` (restriction): as on the request.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, NonNegativeInt

from lampo.contracts import kinds
from lampo.contracts._base import Identifier, InboundContract, OutboundContract, Text, Timestamp
from lampo.contracts.categories import Category
from lampo.contracts.consent import ObjectionScope
from lampo.contracts.registry import Corrections

TaskKind = kinds.TaskKind  # defined without models in lampo.contracts.kinds (settings use it)
AckStatus = Literal["done", "failed"]


class Retained(InboundContract):
    """Data kept despite an erasure, and why: a statute or a legal hold's case reference."""

    category: Category
    items: int = Field(ge=0)
    legal_basis: Text
    until: date | None = None
    """Last day it is kept; None while it depends on an open case (a legal hold)."""


class Effect(InboundContract):
    """Extension: what a task did or, with ``legal_basis``, may not do, in words without personal
    data: ``action`` is a short code such as ``rectified``, ``not_altered``, ``restricted``,
    ``restriction_lifted``, ``objection_recorded``, ``profile_deleted``, ``marketing_suppressed``,
    ``processing_restricted`` or ``nothing_held``."""

    action: Identifier
    category: Category | None = None
    items: int = Field(default=0, ge=0)
    legal_basis: Text | None = None
    """Why a store may not follow (e.g. an issued invoice is an accounting voucher)."""
    at: Timestamp | None = None


class TaskSubject(InboundContract):
    subject_id: Identifier
    customer_numbers: list[Identifier]


class PrivacyTask(OutboundContract):
    """``privacy.task``: one per participant; repeated with the same ``task_id`` on retry."""

    request_id: Identifier
    task_id: Identifier
    participant: Identifier
    kind: TaskKind
    subject: TaskSubject
    categories: list[Category]
    attempt: int = Field(ge=1)
    deadline: Timestamp
    result_key: str | None = None
    """Extension: base64 X25519 public key to seal ``access`` results to."""
    corrections: Corrections | None = None
    """Extension: what to rectify, for ``rectification`` tasks."""
    scope: ObjectionScope | None = None
    """Extension: what the subject objects to, for ``objection`` tasks."""
    lift: bool = False
    """Extension: for ``restriction`` tasks, lift the standing restriction instead of placing one."""


class PrivacyAck(InboundContract):
    """``privacy.ack``: the participant's answer; sent again for a repeated task."""

    request_id: Identifier
    task_id: Identifier
    participant: Identifier
    status: AckStatus
    erased: dict[Category, NonNegativeInt] = Field(default_factory=dict)
    retained: list[Retained] = Field(default_factory=list)
    error: str | None = None
    """Why the task failed; no personal data."""
    effects: list[Effect] = Field(default_factory=list)
    """Extension: what the task did beside erasing and retaining (see ``Effect``)."""
    result: str | None = None
    """Extension: the sealed ``access`` result (base64), for the coordinator only. A result too
    large for one record is sent as ``result_parts`` acks, each with one part of the string."""
    result_part: int | None = Field(default=None, ge=0)
    """Extension: which part of the sealed result this ack carries (0-based)."""
    result_parts: int | None = Field(default=None, ge=1)
    """Extension: how many parts the sealed result was split into."""
