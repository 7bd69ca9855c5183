"""The rules of the coordinator, with no Kafka and no SQL: the request's state machine
(:func:`decide`: a typed request, its tasks and a command in, a :class:`Change` out; every move
in :data:`TRANSITIONS`), plans per kind and category from the data map, deadlines, approvals,
timeouts and aggregation. The application (``coordinator`` and its modules) applies a change in
one transaction.

Lifecycle of a request (the table :data:`TRANSITIONS` is the authority)::

    received ──► rejected (unverified | no_match | invalid | denied)
       │
       ├──► awaiting_approval ──► (approved) ──► accepted ──► in_progress ──► completed
       └──────────────────────────────────────►                             ├─► completed_with_retention
                                                                            └─► failed ──(operator retry)──► in_progress
    any open state ──► cancelled

A restriction lift stays ``accepted``, its tasks held, until its notice to the subject is out.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from lampo.contracts.categories import ALL_CATEGORIES
from lampo.contracts.dsar import (
    CompletionStatus,
    DsarAccepted,
    DsarAwaitingApproval,
    DsarCompleted,
    DsarExtended,
    DsarKind,
    DsarOverdue,
    DsarRejected,
    Package,
    ParticipantResult,
    RestrictionLiftNotice,
    UnreachableCopy,
)
from lampo.contracts.privacy import Retained, TaskKind
from lampo.contracts.registry import Corrections
from lampo.dsar import states
from lampo.dsar.errors import AlreadyExtended, ExtensionTooLate, NotAuthorised, NotRetriable, WrongState

# The states of a request and of a task: defined in lampo.dsar.states (no models, so the store
# and the read view do without this module), named here too.
RECEIVED: Final = states.RECEIVED
AWAITING_APPROVAL: Final = states.AWAITING_APPROVAL
ACCEPTED: Final = states.ACCEPTED
IN_PROGRESS: Final = states.IN_PROGRESS
COMPLETED: Final = states.COMPLETED
COMPLETED_WITH_RETENTION: Final = states.COMPLETED_WITH_RETENTION
FAILED: Final = states.FAILED
REJECTED: Final = states.REJECTED
CANCELLED: Final = states.CANCELLED

OPEN_STATUSES: Final = states.OPEN_STATUSES
UNANSWERED_STATUSES: Final = states.UNANSWERED_STATUSES
FINAL_STATUSES: Final = states.FINAL_STATUSES

TASK_OPEN: Final = states.TASK_OPEN
TASK_DONE: Final = states.TASK_DONE
TASK_FAILED: Final = states.TASK_FAILED
TASK_SUPERSEDED: Final = states.TASK_SUPERSEDED
TASK_CANCELLED: Final = states.TASK_CANCELLED

PACKAGE_KINDS: Final = frozenset({"access", "portability"})
PORTABLE_BASES: Final = frozenset({"consent", "contract"})


# -- names of a request's keys and package ------------------------------------------------------


def input_key(request_id: str) -> str:
    """KeyRing subject of a request's identifiers and corrections."""
    return f"request:{request_id}"


def result_key(request_id: str) -> str:
    """KeyRing subject of the private key access results are sealed to."""
    return f"result-key:{request_id}"


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

DSAR_TASK_KINDS: Final[tuple[TaskKind, ...]] = ("access", "erasure", "rectification", "restriction", "objection")


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


@dataclass(frozen=True)
class DataMap:
    """Who holds what: the categories each participant keeps and the task kinds that apply to it.
    A participant missing from a map holds every category / takes every kind."""

    participants: tuple[str, ...]
    categories: Mapping[str, Sequence[str]] = field(default_factory=dict)
    kinds: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def applies(self, participant: str, kind: TaskKind) -> bool:
        return kind in self.kinds.get(participant, DSAR_TASK_KINDS)

    def held_here(self, participant: str, scope: Sequence[str]) -> list[str]:
        held = self.categories.get(participant)
        return list(scope) if held is None else [c for c in scope if c in held]


def plan(
    kind: DsarKind, categories: Sequence[str] | None, data_map: DataMap, holds: Iterable[Hold] = ()
) -> list[PlannedTask]:
    """One task for each participant that a kind applies to and that holds a category in scope
    (its task names those categories only). An erasure leaves out every category under a legal
    hold and reports it, against each participant holding that category, as retained under the
    hold. A plan may be empty: nobody holds anything the request covers, and it completes so."""
    scope = list(categories) if categories else [str(c) for c in ALL_CATEGORIES]
    held: dict[str, Hold] = {}
    if kind == "erasure":
        for hold in holds:
            for category in scope:
                if hold.holds(category):
                    held.setdefault(category, hold)
    tasks = []
    for participant in dict.fromkeys(data_map.participants):
        here = data_map.held_here(participant, scope)
        if not here or not data_map.applies(participant, task_kind(kind)):
            continue
        retained = [
            # Items uncounted: the held data is left untouched, so nobody counted it.
            Retained.model_validate({"category": c, "items": 0, "legal_basis": h.legal_basis, "until": None})
            for c, h in held.items()
            if c in here
        ]
        to_send = [c for c in here if c not in held]
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


# -- the request's state machine -------------------------------------------------------------------

TRANSITIONS: Final[Mapping[str | None, frozenset[str]]] = {
    None: frozenset({RECEIVED}),
    RECEIVED: frozenset({AWAITING_APPROVAL, ACCEPTED, REJECTED, CANCELLED}),
    AWAITING_APPROVAL: frozenset({ACCEPTED, REJECTED, CANCELLED}),
    ACCEPTED: frozenset({IN_PROGRESS, CANCELLED}),
    IN_PROGRESS: frozenset({COMPLETED, COMPLETED_WITH_RETENTION, FAILED, CANCELLED}),
    FAILED: frozenset({IN_PROGRESS, CANCELLED}),
    COMPLETED: frozenset(),
    COMPLETED_WITH_RETENTION: frozenset(),
    REJECTED: frozenset(),
    CANCELLED: frozenset(),
}
"""Every change of a request's status: the one table. A transition from a status to itself is a
note in the history (a duplicate answered, a retry sent, an extension), allowed in any status."""

TASK_HELD: Final = "held"
"""A task planned but not sent yet: a restriction lift's tasks wait until the subject's notice
is out (Art. 18(3))."""


class IllegalTransition(Exception):
    """A bug, not bad input: the rules asked for a move the table does not have."""


def allowed(from_status: str | None, to_status: str) -> bool:
    return from_status == to_status or to_status in TRANSITIONS.get(from_status, frozenset())


@dataclass(frozen=True)
class Request:
    """What the rules read of a request (the store's typed row)."""

    request_id: str
    kind: str
    status: str
    received_at: datetime
    due_at: datetime
    categories: tuple[str, ...] | None = None
    customer_numbers: tuple[str, ...] = ()
    approved_by: str | None = None
    denied_by: str | None = None
    extended_at: datetime | None = None
    overdue_at: datetime | None = None
    resolve_attempts: int = 0
    scope: str | None = None
    lift: bool = False
    lift_notice_at: datetime | None = None
    reject_reason: str | None = None
    reject_detail: str | None = None
    completion: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Task:
    """What the rules read of a (current) task."""

    task_id: str
    participant: str
    kind: str
    categories: tuple[str, ...]
    status: str
    attempt: int
    timeout_at: datetime
    hold_retained: tuple[Mapping[str, Any], ...] = ()
    erased: Mapping[str, int] = field(default_factory=dict)
    retained: tuple[Mapping[str, Any], ...] = ()
    effects: tuple[Mapping[str, Any], ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Policy:
    data_map: DataMap
    approval_required: Sequence[str] = ("erasure",)
    auto_approve: Sequence[str] = ()
    approvers: Sequence[str] = ()
    task_timeout_s: float = 120.0
    task_max_attempts: int = 3
    resolve_backoff_s: float = 1.0
    resolve_backoff_max_s: float = 60.0


# Commands: what happened or what someone asks.


@dataclass(frozen=True)
class Reject:
    """The request cannot be answered (unverified, no_match, invalid)."""

    reason: str
    detail: str
    actor: str = "system"


@dataclass(frozen=True)
class Resolve:
    """The subject was found. ``restricted``: whether the subject stands restricted now;
    ``holds``: the legal holds on its customer numbers."""

    subject_id: str
    customer_numbers: tuple[str, ...]
    subject_kind: str | None = None
    restricted: bool = False
    holds: tuple[Hold, ...] = ()


@dataclass(frozen=True)
class ResolverDown:
    error: str


@dataclass(frozen=True)
class Approve:
    by: str
    at: datetime
    holds: tuple[Hold, ...] = ()


@dataclass(frozen=True)
class Deny:
    by: str
    reason: str


@dataclass(frozen=True)
class ReleaseHeld:
    """The restriction lift's notice is out: its tasks may go."""


@dataclass(frozen=True)
class Complete:
    """Every task has answered: finish with these results (the package's, for access)."""

    results: Mapping[str, ParticipantResult]
    trace_id: str | None = None
    package: Package | None = None
    unreachable_copies: Sequence[UnreachableCopy] = ()


@dataclass(frozen=True)
class TimeOut:
    task_id: str


@dataclass(frozen=True)
class Retry:
    participant: str
    by: str


@dataclass(frozen=True)
class Extend:
    by: str
    reason: str


@dataclass(frozen=True)
class Cancel:
    by: str


@dataclass(frozen=True)
class MarkOverdue:
    pass


Command = (
    Reject | Resolve | ResolverDown | Approve | Deny | ReleaseHeld | Complete | TimeOut | Retry | Extend | Cancel
    | MarkOverdue
)  # fmt: skip


# What a decision changes.


@dataclass(frozen=True)
class Transition:
    from_status: str | None
    to_status: str
    actor: str
    detail: str | None = None


@dataclass(frozen=True)
class Emit:
    """An event to publish on dsar.events.v1."""

    event_type: str
    data: BaseModel


@dataclass(frozen=True)
class NewTask:
    task_id: str
    participant: str
    kind: str
    categories: tuple[str, ...]
    status: str
    attempt: int
    timeout_at: datetime
    hold_retained: tuple[Mapping[str, Any], ...] = ()
    finished_at: datetime | None = None
    supersedes: str | None = None
    """The failed task this one replaces (an operator's retry)."""


@dataclass(frozen=True)
class TaskUpdate:
    task_id: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Send:
    """Send a task (again): the participant's kind, categories and attempt as stored."""

    task_id: str
    participant: str
    kind: str
    categories: tuple[str, ...]
    attempt: int


@dataclass(frozen=True)
class Change:
    """What one command does to a request: nothing here has happened yet; the application applies
    it all in one transaction, in this order: fields, tasks, transitions, events then sends."""

    status: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    transitions: tuple[Transition, ...] = ()
    new_tasks: tuple[NewTask, ...] = ()
    task_updates: tuple[TaskUpdate, ...] = ()
    events: tuple[Emit, ...] = ()
    sends: tuple[Send, ...] = ()
    destroy_keys: tuple[str, ...] = ()
    """Which of the request's keys go: ``input`` (identifiers, corrections), ``result``."""
    restricted: bool | None = None
    """The subject's restriction state to record (None: unchanged)."""
    new_result_key: bool = False
    """Accepted an access or portability request: make the key its results are sealed to."""

    @property
    def unchanged(self) -> bool:
        return not (self.fields or self.transitions or self.new_tasks or self.task_updates or self.events)


SYSTEM: Final = "system"
_RESULT_KEY_KINDS = PACKAGE_KINDS


def _moved(request: Request, to: str, actor: str, detail: str | None = None) -> Transition:
    if to == request.status or not allowed(request.status, to):
        raise IllegalTransition(f"{request.status} -> {to}")
    return Transition(request.status, to, actor, detail)


def decide(
    request: Request,
    tasks: Sequence[Task],
    command: Command,
    *,
    now: datetime,
    policy: Policy,
    new_id: Callable[[], str],
) -> Change:
    """The rules of the lifecycle: a request, its current tasks and a command in, a change out.
    Raises a ``DsarError`` (wrong state, not authorised, ...) when the command is refused."""
    rule: Callable[..., Change] = _RULES[type(command)]
    return rule(request, tasks, command, now=now, policy=policy, new_id=new_id)


def _on_reject(request: Request, tasks: Sequence[Task], command: Reject, **_: Any) -> Change:
    if request.status not in (RECEIVED, AWAITING_APPROVAL):
        raise WrongState("reject", request.status)
    return _reject(request, command.reason, command.detail, command.actor)


def _on_resolver_down(
    request: Request, tasks: Sequence[Task], command: ResolverDown, *, now: datetime, policy: Policy, **_: Any
) -> Change:
    if request.status != RECEIVED:
        return Change(request.status)
    attempts = request.resolve_attempts + 1
    delay = min(policy.resolve_backoff_s * 2 ** (attempts - 1), policy.resolve_backoff_max_s)
    return Change(
        request.status,
        fields={
            "resolve_attempts": attempts,
            "resolve_error": f"registry unavailable ({command.error}); attempt {attempts}",
            "next_resolve_at": now + timedelta(seconds=delay),
        },
    )


def _on_deny(request: Request, tasks: Sequence[Task], command: Deny, *, policy: Policy, **_: Any) -> Change:
    if policy.approvers and command.by not in policy.approvers:
        raise NotAuthorised("denied_by")
    if request.status == REJECTED and request.denied_by is not None:
        return Change(request.status)  # denied already
    if request.status not in (AWAITING_APPROVAL, RECEIVED) or request.approved_by is not None:
        raise WrongState("deny", request.status)
    change = _reject(request, "denied", command.reason, command.by)
    return replace(change, fields={**change.fields, "denied_by": command.by, "denial_reason": command.reason})


def _on_extend(request: Request, tasks: Sequence[Task], command: Extend, *, now: datetime, **_: Any) -> Change:
    if request.status not in UNANSWERED_STATUSES:
        raise WrongState("extend", request.status)
    if request.extended_at is not None:
        raise AlreadyExtended()
    if now > request.due_at:
        raise ExtensionTooLate()
    new_due = extended_due_at(request.received_at)
    note = f"deadline extended to {new_due.isoformat()}: {command.reason}"
    extended = DsarExtended.model_validate(
        {"request_id": request.request_id, "kind": request.kind, "due_at": new_due, "reason": command.reason,
         "extended_at": now}
    )  # fmt: skip
    return Change(
        request.status,
        fields={"due_at": new_due, "extended_at": now, "extended_by": command.by, "extension_reason": command.reason},
        transitions=(Transition(request.status, request.status, command.by, note),),
        events=(Emit("dsar.extended", extended),),  # the subject is told, with the reason (Art. 12(3))
    )


def _on_cancel(request: Request, tasks: Sequence[Task], command: Cancel, *, now: datetime, **_: Any) -> Change:
    if request.status not in UNANSWERED_STATUSES:
        raise WrongState("cancel", request.status)
    return Change(
        CANCELLED,
        fields={"sealed_input": None, "sealed_private_key": None, "next_resolve_at": None},
        transitions=(_moved(request, CANCELLED, command.by, "cancelled"),),
        task_updates=tuple(
            TaskUpdate(t.task_id, {"status": TASK_CANCELLED, "finished_at": now})
            for t in tasks
            if t.status in (TASK_OPEN, TASK_HELD)
        ),
        destroy_keys=("input", "result"),
    )


def _on_overdue(request: Request, tasks: Sequence[Task], command: MarkOverdue, *, now: datetime, **_: Any) -> Change:
    if request.overdue_at is not None or request.due_at > now or request.status not in UNANSWERED_STATUSES:
        return Change(request.status)
    return Change(
        request.status,
        fields={"overdue_at": now},
        transitions=(Transition(request.status, request.status, SYSTEM, "overdue: the deadline passed unanswered"),),
        events=(Emit("dsar.overdue", DsarOverdue(request_id=request.request_id, due_at=request.due_at)),),
    )


def _reject(request: Request, reason: str, detail: str, actor: str) -> Change:
    return Change(
        REJECTED,
        fields={"reject_reason": reason, "reject_detail": detail, "sealed_input": None, "next_resolve_at": None},
        transitions=(_moved(request, REJECTED, actor, f"{reason}: {detail}"),),
        events=(
            Emit(
                "dsar.rejected",
                DsarRejected.model_validate({"request_id": request.request_id, "reason": reason, "detail": detail}),
            ),
        ),
        destroy_keys=("input",),
    )


def _on_resolve(
    request: Request,
    tasks: Sequence[Task],
    command: Resolve,
    *,
    now: datetime,
    policy: Policy,
    new_id: Callable[[], str],
) -> Change:
    if request.status != RECEIVED:
        return Change(request.status)
    resolved = {
        "subject_id": command.subject_id,
        "customer_numbers": list(command.customer_numbers),
        "subject_kind": command.subject_kind,
        "resolve_error": None,
        "next_resolve_at": None,
    }
    if request.kind == "restriction" and request.lift and not command.restricted:
        change = _reject(request, "invalid", "lift: the subject has no standing restriction to lift", SYSTEM)
        return replace(change, fields={**resolved, **change.fields})
    request = replace(request, customer_numbers=command.customer_numbers)
    if request.approved_by is None and needs_approval(
        request.kind,  # type: ignore[arg-type]
        policy.approval_required,
        policy.auto_approve,
    ):
        return Change(
            AWAITING_APPROVAL,
            fields=resolved,
            transitions=(_moved(request, AWAITING_APPROVAL, SYSTEM, "subject resolved; waiting for approval"),),
            events=(
                Emit(
                    "dsar.awaiting_approval",
                    DsarAwaitingApproval.model_validate({"request_id": request.request_id, "kind": request.kind}),
                ),
            ),
        )
    change = _accept(request, command.holds, request.approved_by or SYSTEM, None, now=now, policy=policy, new_id=new_id)
    return replace(change, fields={**resolved, **change.fields})


def _on_approve(
    request: Request,
    tasks: Sequence[Task],
    command: Approve,
    *,
    now: datetime,
    policy: Policy,
    new_id: Callable[[], str],
) -> Change:
    if policy.approvers and command.by not in policy.approvers:
        raise NotAuthorised("approved_by")
    if request.approved_by is not None:
        return Change(request.status)  # approved already: a repeated approval changes nothing
    approved = {"approved_by": command.by, "approved_at": command.at}
    if request.status == AWAITING_APPROVAL:
        change = _accept(request, command.holds, command.by, "approved", now=now, policy=policy, new_id=new_id)
        return replace(change, fields={**approved, **change.fields})
    if request.status == RECEIVED:
        note = Transition(request.status, request.status, command.by, "approved before identity resolution")
        return Change(request.status, fields=approved, transitions=(note,))
    raise WrongState("approve", request.status)


def _accept(
    request: Request,
    holds: Sequence[Hold],
    actor: str,
    detail: str | None,
    *,
    now: datetime,
    policy: Policy,
    new_id: Callable[[], str],
) -> Change:
    """Plan and fan out: accepted, then in progress with every task sent. A restriction lift
    tells the subject first: its tasks are held (the request stays accepted) until the notice
    is out (``ReleaseHeld``)."""
    kind: DsarKind = request.kind  # type: ignore[assignment]
    planned = plan(kind, request.categories, policy.data_map, holds if kind == "erasure" else ())
    timeout = now + timedelta(seconds=task_timeout_s(policy.task_timeout_s, 1))
    lift = kind == "restriction" and request.lift
    new_tasks: list[NewTask] = []
    sends: list[Send] = []
    for t in planned:
        task_id = new_id()
        retained = tuple(r.model_dump(mode="json") for r in t.hold_retained)
        if not t.send:
            new_tasks.append(NewTask(task_id, t.participant, t.kind, (), TASK_DONE, 1, now, retained, finished_at=now))
            continue
        status = TASK_HELD if lift else TASK_OPEN
        new_tasks.append(NewTask(task_id, t.participant, t.kind, tuple(t.categories), status, 1, timeout, retained))
        if not lift:
            sends.append(Send(task_id, t.participant, t.kind, tuple(t.categories), 1))
    accepted = DsarAccepted.model_validate(
        {
            "request_id": request.request_id,
            "kind": kind,
            "due_at": request.due_at,
            "participants": [t.participant for t in planned],
        }
    )
    events = [Emit("dsar.accepted", accepted)]
    transitions = [_moved(request, ACCEPTED, actor, detail)]
    fields: dict[str, Any] = {}
    status = ACCEPTED
    if lift:
        # The subject is told first (Art. 18(3)), whether or not any store holds something.
        notice = RestrictionLiftNotice(request_id=request.request_id, kind="restriction", lift_at=now)
        events.append(Emit("dsar.restriction_lift_notice", notice))
        fields["lift_notice_at"] = now
        transitions.append(Transition(ACCEPTED, ACCEPTED, SYSTEM, "restriction lift: the subject is told first"))
    if not any(t.status == TASK_HELD for t in new_tasks):  # held: they wait for the notice (ReleaseHeld)
        status = IN_PROGRESS
        transitions.append(Transition(ACCEPTED, IN_PROGRESS, SYSTEM, f"{len(sends)} task(s) sent"))
    return Change(
        status,
        fields=fields,
        transitions=tuple(transitions),
        new_tasks=tuple(new_tasks),
        events=tuple(events),
        sends=tuple(sends),
        new_result_key=kind in _RESULT_KEY_KINDS,
    )


def _on_release(
    request: Request, tasks: Sequence[Task], command: ReleaseHeld, *, now: datetime, policy: Policy, **_: Any
) -> Change:
    held = [t for t in tasks if t.status == TASK_HELD]
    if request.status != ACCEPTED or not held:
        return Change(request.status)
    timeout = now + timedelta(seconds=task_timeout_s(policy.task_timeout_s, 1))
    return Change(
        IN_PROGRESS,
        task_updates=tuple(
            TaskUpdate(t.task_id, {"status": TASK_OPEN, "sent_at": now, "timeout_at": timeout}) for t in held
        ),
        transitions=(_moved(request, IN_PROGRESS, SYSTEM, f"lift notice out; {len(held)} task(s) sent"),),
        sends=tuple(Send(t.task_id, t.participant, t.kind, t.categories, t.attempt) for t in held),
    )


def answered(tasks: Sequence[Task]) -> bool:
    """Every current task has its answer (done or failed)."""
    return all(t.status not in (TASK_OPEN, TASK_HELD) for t in tasks)


def results(tasks: Sequence[Task]) -> dict[str, ParticipantResult]:
    """Each participant's answer as dsar.completed reports it, with its effects."""
    return {
        t.participant: ParticipantResult.model_validate(
            {
                "status": "done" if t.status == TASK_DONE else "failed",
                "erased": dict(t.erased),
                "retained": [*t.hold_retained, *t.retained],
                "error": t.error,
                "effects": list(t.effects),
            }
        )
        for t in tasks
    }


def _on_complete(request: Request, tasks: Sequence[Task], command: Complete, *, now: datetime, **_: Any) -> Change:
    if request.status != IN_PROGRESS or not answered(tasks):
        return Change(request.status)
    status = completion_status(command.results)
    completion = DsarCompleted(
        request_id=request.request_id,
        kind=request.kind,
        status=status,
        due_at=request.due_at,
        completed_at=now,
        trace_id=command.trace_id,
        results=dict(command.results),
        package=command.package,
        lift_notice_at=request.lift_notice_at,
        unreachable_copies=list(command.unreachable_copies),
    )
    detail = ", ".join(f"{p} failed: {r.error}" for p, r in command.results.items() if r.status == "failed") or None
    fields: dict[str, Any] = {"completed_at": now, "completion": completion.model_dump(mode="json")}
    restricted: bool | None = None
    if status != "failed":
        fields["sealed_input"] = None  # a finished request keeps no identifiers (a failed one may be retried)
        if request.kind == "restriction":
            restricted = not request.lift
    return Change(
        status,
        fields=fields,
        transitions=(_moved(request, status, SYSTEM, detail),),
        events=(Emit("dsar.completed", completion),),
        destroy_keys=("input",) if status != "failed" else (),
        restricted=restricted,
    )


def _on_time_out(
    request: Request, tasks: Sequence[Task], command: TimeOut, *, now: datetime, policy: Policy, **_: Any
) -> Change:
    task_id = command.task_id
    task = next((t for t in tasks if t.task_id == task_id), None)
    if task is None or task.status != TASK_OPEN or task.timeout_at > now:
        return Change(request.status)
    if task.attempt < policy.task_max_attempts:
        attempt = task.attempt + 1
        wait = timedelta(seconds=task_timeout_s(policy.task_timeout_s, attempt))
        note = f"{task.participant}: no answer to attempt {task.attempt}; sent attempt {attempt}"
        return Change(
            request.status,
            task_updates=(TaskUpdate(task_id, {"attempt": attempt, "sent_at": now, "timeout_at": now + wait}),),
            transitions=(Transition(request.status, request.status, SYSTEM, note),),
            sends=(Send(task_id, task.participant, task.kind, task.categories, attempt),),
        )
    error = f"{task.participant}: no answer after {task.attempt} attempts"
    return Change(
        request.status,
        task_updates=(TaskUpdate(task_id, {"status": TASK_FAILED, "finished_at": now, "error": error}),),
    )


def _on_retry(
    request: Request, tasks: Sequence[Task], command: Retry, *, now: datetime, policy: Policy, new_id: Callable[[], str]
) -> Change:
    if request.status not in (FAILED, IN_PROGRESS):
        raise WrongState("retry a participant of", request.status)
    task = next((t for t in tasks if t.participant == command.participant), None)
    if task is None:
        raise NotRetriable("participant: has no task in this request")
    if task.status != TASK_FAILED:
        raise NotRetriable(f"participant: its task is {task.status}, not failed")
    task_id, attempt = new_id(), task.attempt + 1
    wait = timedelta(seconds=task_timeout_s(policy.task_timeout_s, 1))
    detail = f"operator retry of {command.participant} (attempt {attempt})"
    if request.status == FAILED:
        transition = _moved(request, IN_PROGRESS, command.by, detail)
        fields: dict[str, Any] = {"completed_at": None}
    else:
        transition = Transition(request.status, request.status, command.by, detail)
        fields = {}
    return Change(
        IN_PROGRESS,
        fields=fields,
        task_updates=(TaskUpdate(task.task_id, {"status": TASK_SUPERSEDED, "current": False}),),
        new_tasks=(
            NewTask(
                task_id,
                task.participant,
                task.kind,
                task.categories,
                TASK_OPEN,
                attempt,
                now + wait,
                task.hold_retained,
                supersedes=task.task_id,
            ),
        ),
        transitions=(transition,),
        sends=(Send(task_id, task.participant, task.kind, task.categories, attempt),),
    )


_RULES: Final[Mapping[type, Callable[..., Change]]] = {
    Reject: _on_reject,
    Resolve: _on_resolve,
    ResolverDown: _on_resolver_down,
    Approve: _on_approve,
    Deny: _on_deny,
    ReleaseHeld: _on_release,
    Complete: _on_complete,
    TimeOut: _on_time_out,
    Retry: _on_retry,
    Extend: _on_extend,
    Cancel: _on_cancel,
    MarkOverdue: _on_overdue,
}


# -- intake ----------------------------------------------------------------------------------------

# The category (privacy statement §6) of each section a rectification may correct.
CORRECTION_CATEGORIES: Final[Mapping[str, str]] = {
    "person": "basic",
    "organisation": "basic",
    "contact": "contact",
    "contact_person_for": "contact_person",
    "metering_points": "basic",
    "account": "basic",
}


def rectification_scope(sections: Iterable[str]) -> list[str]:
    """The categories a rectification touches: its tasks go to every store holding a copy of them."""
    touched = {CORRECTION_CATEGORIES.get(s, "basic") for s in sections}
    return [str(c) for c in ALL_CATEGORIES if c in touched]


_CORRECTION_SECTIONS: Final = frozenset(Corrections.model_fields)
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def intake_problem(data: Mapping[str, Any]) -> str | None:
    """What the contract's tolerant reading lets through but a request must not carry: a
    correction naming a section that does not exist (it would be dropped, and the subject told
    the data was corrected). A detail naming the field, never a value; None when fine."""
    corrections = data.get("corrections")
    if isinstance(corrections, Mapping):
        for name in corrections:
            if name not in _CORRECTION_SECTIONS:
                where = f"data.corrections.{name}" if _FIELD_NAME.fullmatch(str(name)) else "data.corrections"
                return f"{where}: no such section (sections: {', '.join(sorted(_CORRECTION_SECTIONS))})"
    return None
