"""The rules of the coordinator, with no Kafka and no SQL: deadlines, plans, aggregation.

Lifecycle of a request::

    received ──► rejected (unverified | no_match | invalid | denied)
       │
       ├──► awaiting_approval ──► (approved) ──► accepted ──► in_progress ──► completed
       └──────────────────────────────────────►                             ├─► completed_with_retention
                                                                            └─► failed ──(operator retry)──► in_progress
    any open state ──► cancelled
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from lampo.contracts.categories import ALL_CATEGORIES
from lampo.contracts.dsar import CompletionStatus, DsarKind, ParticipantResult
from lampo.contracts.privacy import Retained, TaskKind

RECEIVED: Final = "received"
AWAITING_APPROVAL: Final = "awaiting_approval"
ACCEPTED: Final = "accepted"
IN_PROGRESS: Final = "in_progress"
COMPLETED: Final = "completed"
COMPLETED_WITH_RETENTION: Final = "completed_with_retention"
FAILED: Final = "failed"
REJECTED: Final = "rejected"
CANCELLED: Final = "cancelled"

OPEN_STATUSES: Final = (RECEIVED, AWAITING_APPROVAL, ACCEPTED, IN_PROGRESS)
# Not answered in full: a failed request still owes the subject an answer, so its deadline
# still runs (an operator retries the failed participant).
UNANSWERED_STATUSES: Final = (*OPEN_STATUSES, FAILED)
FINAL_STATUSES: Final = (COMPLETED, COMPLETED_WITH_RETENTION, REJECTED, CANCELLED)

# Task states.
TASK_OPEN: Final = "open"
TASK_DONE: Final = "done"
TASK_FAILED: Final = "failed"
TASK_SUPERSEDED: Final = "superseded"
TASK_CANCELLED: Final = "cancelled"

PACKAGE_KINDS: Final = frozenset({"access", "portability"})
PORTABLE_BASES: Final = frozenset({"consent", "contract"})


# -- deadlines (GDPR Art. 12(3)) ----------------------------------------------------------------


def add_months(when: datetime, months: int) -> datetime:
    """The same day ``months`` calendar months later, or that month's last day when the month is
    shorter (31 January + 1 month = 28 or 29 February). The time of day is kept."""
    month_index = when.month - 1 + months
    year, month = when.year + month_index // 12, month_index % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


def due_at(received_at: datetime) -> datetime:
    """One calendar month from receipt."""
    return add_months(received_at, 1)


def extended_due_at(received_at: datetime) -> datetime:
    """Extended once by two further months: three calendar months from receipt."""
    return add_months(received_at, 3)


def task_timeout_s(base_s: float, attempt: int) -> float:
    """The wait for attempt ``attempt`` (1-based): doubling, so retries back off."""
    return float(base_s * 2 ** (attempt - 1))


# -- legal holds ---------------------------------------------------------------------------------


class Hold(BaseModel):
    """One legal hold as retention.holds.v1 states it; ``categories`` empty means every category."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    hold_id: str
    categories: list[str] = Field(default_factory=list)
    case_reference: str
    authority: str
    placed_at: datetime | None = None

    @property
    def legal_basis(self) -> str:
        return f"legal hold: {self.case_reference} ({self.authority})"

    def holds(self, category: str) -> bool:
        return not self.categories or category in self.categories


class HoldState(BaseModel):
    """``legal_hold.state`` on retention.holds.v1 (internal, key customer_number): every hold
    standing for that customer number now."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    customer_number: str
    holds: list[Hold] = Field(default_factory=list)


# -- plans ---------------------------------------------------------------------------------------


def task_kind(kind: DsarKind) -> TaskKind:
    """What a participant is asked to do for a request of ``kind``."""
    if kind == "portability":
        return "access"  # the same data; the package keeps only what portability covers
    return kind


@dataclass(frozen=True)
class PlannedTask:
    participant: str
    kind: TaskKind
    categories: list[str]
    hold_retained: list[Retained] = field(default_factory=list)
    send: bool = True
    """False when every category in scope is held: nothing to ask, the hold is the answer."""


def plan(
    kind: DsarKind,
    categories: Sequence[str] | None,
    *,
    participants: Sequence[str],
    participant_categories: Mapping[str, Sequence[str]],
    objection_participant: str,
    holds: Iterable[Hold] = (),
) -> list[PlannedTask]:
    """One task per participant. An erasure leaves out every category under a legal hold and
    reports it, against each participant holding that category, as retained under the hold."""
    scope = list(categories) if categories else [str(c) for c in ALL_CATEGORIES]
    targets = [objection_participant] if kind == "objection" else list(dict.fromkeys(participants))
    held: dict[str, Hold] = {}
    if kind == "erasure":
        for hold in holds:
            for category in scope:
                if hold.holds(category):
                    held.setdefault(category, hold)
    to_send = [c for c in scope if c not in held]
    tasks = []
    for participant in targets:
        holds_here = participant_categories.get(participant, scope)
        retained = [
            # Items uncounted: the held data is left untouched, so nobody counted it.
            Retained.model_validate({"category": c, "items": 0, "legal_basis": h.legal_basis, "until": None})
            for c, h in held.items()
            if c in holds_here
        ]
        tasks.append(PlannedTask(participant, task_kind(kind), to_send, retained, send=bool(to_send)))
    return tasks


def needs_approval(kind: DsarKind, approval_required: Sequence[str], auto_approve: Sequence[str]) -> bool:
    return kind in approval_required and kind not in auto_approve


# -- aggregation ---------------------------------------------------------------------------------


def completion_status(results: Mapping[str, ParticipantResult]) -> CompletionStatus:
    if any(r.status == "failed" for r in results.values()):
        return "failed"
    if any(r.retained for r in results.values()):
        return "completed_with_retention"
    return "completed"


def portable(value: Any) -> Any:
    """Only what the subject provided and what is processed by consent or contract (Art. 20):
    items that carry ``origin`` / ``legal_basis`` are kept only when they qualify; items that
    carry neither are kept (nothing says they do not)."""
    if isinstance(value, list):
        return [portable(v) for v in value if not (isinstance(v, dict) and not _qualifies(v))]
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items() if not (isinstance(v, dict) and not _qualifies(v))}
    return value


def _qualifies(item: Mapping[str, Any]) -> bool:
    if "origin" in item and item["origin"] != "subject":
        return False
    return not ("legal_basis" in item and item["legal_basis"] not in PORTABLE_BASES)
