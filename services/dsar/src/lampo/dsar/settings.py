"""Settings of the DSAR coordinator (``LAMPO_*`` environment variables; lists and maps as JSON)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from lampo.contracts.dsar import DsarKind
from lampo.settings import ServiceSettings

# Which categories each participant holds: used to report data kept under a legal hold against
# the participant that keeps it. Tasks themselves carry the request's whole scope, and each
# participant picks what it holds (a participant knows its store better than this table).
DEFAULT_PARTICIPANT_CATEGORIES: dict[str, list[str]] = {
    "registry": ["basic", "contact_person", "contact", "customer_relationship", "services", "consumption"],
    "billing": ["billing"],
    "recordings": ["customer_relationship"],
    "consent": ["customer_relationship", "other_consented"],
}


def _erasure_only() -> list[DsarKind]:
    return ["erasure"]


class DsarSettings(ServiceSettings):
    service: ClassVar[str] = "dsar"
    default_http_port: ClassVar[int] = 8103
    default_signer: ClassVar[str | None] = "coordinator"  # the name its tasks are signed under

    source: str = "urn:lampo:dsar"
    # The participants every request is fanned out to (an objection goes to one of them only).
    participants: list[str] = Field(default_factory=lambda: ["registry", "billing", "recordings", "consent"])
    participant_categories: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_PARTICIPANT_CATEGORIES))
    objection_participant: str = "consent"

    # Identity: the registry resolves identifiers to a subject. ``customer_number`` maps a
    # customer number straight to a subject without asking anyone: for benchmarks only.
    identity_resolver: Literal["registry", "customer_number"] = "registry"
    registry_url: str = "http://127.0.0.1:8101"
    resolve_timeout_s: float = 5.0
    resolve_backoff_s: float = 1.0
    resolve_backoff_max_s: float = 60.0
    resolve_concurrency: int = 8

    # Participant tasks: a task not answered within its timeout is sent again (same task_id,
    # attempt + 1, the timeout doubling each time); after the last attempt it fails.
    task_timeout_s: float = 120.0
    task_max_attempts: int = 3

    # Approval: these kinds wait for dsar.approved / dsar.denied, unless listed in auto_approve.
    approval_required: list[DsarKind] = Field(default_factory=_erasure_only)
    auto_approve: list[DsarKind] = Field(default_factory=list)
    # Names allowed to approve or deny (the managing director leads erasure handling);
    # empty: any named approver (until authentication lands).
    approvers: list[str] = Field(default_factory=list)

    # The checker: resolution retries, task timeouts, overdue requests.
    check_interval_s: float = 2.0
