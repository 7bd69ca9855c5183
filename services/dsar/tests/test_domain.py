"""The request's state machine (lampo.dsar.domain.decide), command by command and state by state:
no broker, no database. The plan per kind and category is checked against the default data map."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lampo.dsar import domain
from lampo.dsar.domain import (
    ACCEPTED,
    AWAITING_APPROVAL,
    CANCELLED,
    COMPLETED,
    COMPLETED_WITH_RETENTION,
    FAILED,
    FINAL_STATUSES,
    IN_PROGRESS,
    OPEN_STATUSES,
    RECEIVED,
    REJECTED,
    TASK_DONE,
    TASK_FAILED,
    TASK_HELD,
    TASK_OPEN,
    TRANSITIONS,
)
from lampo.dsar.errors import AlreadyExtended, ExtensionTooLate, NotAuthorised, NotRetriable, WrongState
from lampo.dsar.settings import DEFAULT_PARTICIPANT_CATEGORIES, DEFAULT_PARTICIPANT_KINDS

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
EVERYONE = ("registry", "billing", "recordings", "consent")
POLICY = domain.Policy(
    data_map=domain.DataMap(EVERYONE, DEFAULT_PARTICIPANT_CATEGORIES, DEFAULT_PARTICIPANT_KINDS),
    approval_required=("erasure",),
)
STATUSES = [s for s in TRANSITIONS if s is not None]


def ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"t{next(counter)}"


def request(kind: str = "access", status: str = RECEIVED, **fields: Any) -> domain.Request:
    return domain.Request(
        request_id="r1", kind=kind, status=status, received_at=NOW, due_at=domain.due_at(NOW), **fields
    )


def task(participant: str, status: str = TASK_OPEN, *, attempt: int = 1, **fields: Any) -> domain.Task:
    return domain.Task(
        task_id=f"task-{participant}", participant=participant, kind="access", categories=("basic",),
        status=status, attempt=attempt, timeout_at=NOW + timedelta(minutes=2), **fields,
    )  # fmt: skip


def decide(
    req: domain.Request, command: domain.Command, tasks: list[domain.Task] | None = None, *, now: datetime = NOW,
    policy: domain.Policy = POLICY,
) -> domain.Change:  # fmt: skip
    return domain.decide(req, tasks or [], command, now=now, policy=policy, new_id=ids())


def resolve(**fields: Any) -> domain.Resolve:
    return domain.Resolve(subject_id="s-1", customer_numbers=("100001",), **fields)


def planned(kind: str, categories: list[str] | None = None, policy: domain.Policy = POLICY) -> dict[str, list[str]]:
    return {t.participant: t.categories for t in domain.plan(kind, categories, policy.data_map)}  # type: ignore[arg-type]


# -- the plan: per kind and per category, from the data map --------------------------------------


@pytest.mark.parametrize("kind", ["access", "portability", "erasure", "rectification", "restriction"])
def test_every_store_gets_the_kinds_it_handles(kind: str) -> None:
    assert set(planned(kind)) == set(EVERYONE)


def test_an_objection_goes_to_the_consent_ledger_and_the_register_only() -> None:
    assert set(planned("objection")) == {"registry", "consent"}


def test_an_objection_goes_to_another_store_only_when_configured() -> None:
    kinds = {**DEFAULT_PARTICIPANT_KINDS, "billing": ["access", "objection"]}
    policy = replace(POLICY, data_map=domain.DataMap(EVERYONE, DEFAULT_PARTICIPANT_CATEGORIES, kinds))
    assert set(planned("objection", policy=policy)) == {"registry", "billing", "consent"}


def test_a_task_names_only_the_categories_its_participant_holds() -> None:
    plan = planned("access")
    assert plan["billing"] == ["basic", "contact", "billing"]
    assert plan["consent"] == ["contact", "customer_relationship", "other_consented"]


def test_a_store_holding_nothing_in_scope_gets_no_task() -> None:
    assert set(planned("rectification", ["billing"])) == {"registry", "billing", "recordings", "consent"} - {
        "registry", "recordings", "consent",
    }  # fmt: skip
    assert planned("objection", ["billing"]) == {}


def test_a_participant_missing_from_the_map_takes_every_kind_and_category() -> None:
    policy = replace(POLICY, data_map=domain.DataMap(("stand-in",)))
    assert planned("objection", ["billing"], policy) == {"stand-in": ["billing"]}


# -- the table ----------------------------------------------------------------------------------


def test_final_states_have_no_way_out_and_every_state_is_in_the_table() -> None:
    for status in FINAL_STATUSES:
        assert TRANSITIONS[status] == frozenset()
    targets = {t for ts in TRANSITIONS.values() for t in ts}
    assert targets <= set(STATUSES)
    assert set(OPEN_STATUSES) | {FAILED} | set(FINAL_STATUSES) == set(STATUSES)


def test_a_move_outside_the_table_is_a_bug_not_a_change() -> None:
    with pytest.raises(domain.IllegalTransition):
        domain._moved(request(status=COMPLETED), IN_PROGRESS, "system")


# -- reject, resolve -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [RECEIVED, AWAITING_APPROVAL])
def test_reject_ends_the_request_and_its_input_key(status: str) -> None:
    change = decide(request(status=status), domain.Reject("no_match", "identifiers: no subject"))
    assert change.status == REJECTED
    assert [e.event_type for e in change.events] == ["dsar.rejected"]
    assert change.destroy_keys == ("input",)


@pytest.mark.parametrize("status", FINAL_STATUSES)
def test_nothing_rejects_a_final_request(status: str) -> None:
    with pytest.raises(WrongState):
        decide(request(status=status), domain.Reject("invalid", "x"))


def test_a_resolved_access_request_is_sent_to_every_store_at_once() -> None:
    change = decide(request("access"), resolve())
    assert change.status == IN_PROGRESS
    assert [(t.from_status, t.to_status) for t in change.transitions] == [(RECEIVED, ACCEPTED), (ACCEPTED, IN_PROGRESS)]
    assert [e.event_type for e in change.events] == ["dsar.accepted"]
    assert {s.participant for s in change.sends} == set(EVERYONE)
    assert change.new_result_key and change.fields["subject_id"] == "s-1"


def test_a_resolved_erasure_waits_for_approval_unless_approved_already() -> None:
    waiting = decide(request("erasure"), resolve())
    assert waiting.status == AWAITING_APPROVAL and not waiting.sends
    approved = decide(request("erasure", approved_by="md"), resolve())
    assert approved.status == IN_PROGRESS and approved.transitions[0].actor == "md"


def test_an_erasure_under_a_legal_hold_reports_the_hold_instead_of_asking() -> None:
    hold = domain.Hold(hold_id="h1", categories=["billing"], case_reference="R 26/1", authority="court")
    change = decide(request("erasure", approved_by="md", categories=("billing",)), resolve(holds=(hold,)))
    [billing] = [t for t in change.new_tasks if t.participant == "billing"]
    assert billing.status == TASK_DONE and billing.hold_retained[0]["legal_basis"].startswith("legal hold")
    assert not change.sends


def test_a_lift_for_a_subject_not_restricted_is_rejected_naming_lift() -> None:
    change = decide(request("restriction", lift=True), resolve(restricted=False))
    assert change.status == REJECTED
    assert change.fields["reject_reason"] == "invalid" and change.fields["reject_detail"].startswith("lift:")


def test_a_lift_tells_the_subject_first_and_holds_its_tasks() -> None:
    change = decide(request("restriction", lift=True), resolve(restricted=True))
    assert change.status == ACCEPTED and not change.sends
    assert [e.event_type for e in change.events] == ["dsar.accepted", "dsar.restriction_lift_notice"]
    assert change.fields["lift_notice_at"] == NOW
    assert {t.status for t in change.new_tasks} == {TASK_HELD}


def test_a_lift_nobody_holds_anything_for_is_still_told_then_completes() -> None:
    nothing_held = replace(POLICY, data_map=domain.DataMap(("billing",), {"billing": ["billing"]}))
    lift = request("restriction", lift=True, categories=("contact",))
    change = decide(lift, resolve(restricted=True), policy=nothing_held)
    assert change.status == IN_PROGRESS and not change.new_tasks
    assert [e.event_type for e in change.events] == ["dsar.accepted", "dsar.restriction_lift_notice"]


def test_the_held_lift_tasks_go_once_released() -> None:
    accepted = request("restriction", ACCEPTED, lift=True, lift_notice_at=NOW)
    held = [task(p, TASK_HELD) for p in EVERYONE]
    change = decide(accepted, domain.ReleaseHeld(), held, now=NOW + timedelta(seconds=1))
    assert change.status == IN_PROGRESS and {s.participant for s in change.sends} == set(EVERYONE)
    assert {u.fields["status"] for u in change.task_updates} == {TASK_OPEN}
    assert decide(request(status=IN_PROGRESS), domain.ReleaseHeld(), held).unchanged


@pytest.mark.parametrize("status", [s for s in STATUSES if s != RECEIVED])
def test_resolution_changes_only_a_received_request(status: str) -> None:
    assert decide(request(status=status), resolve()).unchanged
    assert decide(request(status=status), domain.ResolverDown("timeout")).unchanged


def test_a_registry_down_backs_off_doubling() -> None:
    first = decide(request(), domain.ResolverDown("ConnectError"))
    third = decide(request(resolve_attempts=2), domain.ResolverDown("ConnectError"))
    assert first.status == RECEIVED and first.fields["next_resolve_at"] == NOW + timedelta(seconds=1)
    assert third.fields["next_resolve_at"] == NOW + timedelta(seconds=4)


# -- approve, deny -------------------------------------------------------------------------------


def test_approve_per_state() -> None:
    assert decide(request("erasure", AWAITING_APPROVAL), domain.Approve("md", NOW)).status == IN_PROGRESS
    early = decide(request("erasure"), domain.Approve("md", NOW))
    assert early.status == RECEIVED and early.fields["approved_by"] == "md"
    assert decide(request("erasure", IN_PROGRESS, approved_by="md"), domain.Approve("md", NOW)).unchanged
    with pytest.raises(WrongState):
        decide(request("erasure", COMPLETED), domain.Approve("md", NOW))
    with pytest.raises(NotAuthorised):
        decide(
            request("erasure", AWAITING_APPROVAL), domain.Approve("x", NOW), policy=replace(POLICY, approvers=["md"])
        )


def test_deny_per_state() -> None:
    denied = decide(request("erasure", AWAITING_APPROVAL), domain.Deny("md", "manifestly unfounded"))
    assert denied.status == REJECTED and denied.fields["denied_by"] == "md"
    assert decide(request("erasure", REJECTED, denied_by="md"), domain.Deny("md", "again")).unchanged
    for status in (ACCEPTED, IN_PROGRESS, COMPLETED):
        with pytest.raises(WrongState):
            decide(request("erasure", status), domain.Deny("md", "no"))


# -- completion ----------------------------------------------------------------------------------

EFFECT = {"action": "rectified", "category": "contact", "items": 1}


def test_complete_waits_for_every_task() -> None:
    tasks = [task("registry", TASK_DONE), task("billing")]
    assert decide(request(status=IN_PROGRESS), domain.Complete(domain.results(tasks)), tasks).unchanged


def test_complete_carries_each_participants_effects() -> None:
    tasks = [task("registry", TASK_DONE, effects=(EFFECT,)), task("billing", TASK_DONE)]
    change = decide(request("rectification", IN_PROGRESS), domain.Complete(domain.results(tasks)), tasks)
    assert change.status == COMPLETED and change.destroy_keys == ("input",)
    completed = change.events[0].data.model_dump(mode="json")
    assert completed["results"]["registry"]["effects"][0]["action"] == "rectified"
    assert completed["results"]["billing"]["effects"] == []


def test_a_failed_participant_fails_the_request_but_keeps_its_input_for_a_retry() -> None:
    tasks = [task("registry", TASK_DONE), task("billing", TASK_FAILED, error="billing: down")]
    change = decide(request(status=IN_PROGRESS), domain.Complete(domain.results(tasks)), tasks)
    assert change.status == FAILED and change.destroy_keys == () and "sealed_input" not in change.fields


def test_retained_data_completes_with_retention() -> None:
    kept = {"category": "billing", "items": 3, "legal_basis": "Accounting Act 2:10", "until": None}
    tasks = [task("billing", TASK_DONE, retained=(kept,))]
    change = decide(request("erasure", IN_PROGRESS), domain.Complete(domain.results(tasks)), tasks)
    assert change.status == COMPLETED_WITH_RETENTION


def test_a_restriction_marks_the_subject_and_its_lift_clears_it() -> None:
    tasks = [task("registry", TASK_DONE)]
    placed = decide(request("restriction", IN_PROGRESS), domain.Complete(domain.results(tasks)), tasks)
    lifted = decide(
        request("restriction", IN_PROGRESS, lift=True, lift_notice_at=NOW),
        domain.Complete(domain.results(tasks)), tasks, now=NOW + timedelta(seconds=5),
    )  # fmt: skip
    assert placed.restricted is True and lifted.restricted is False
    assert lifted.events[0].data.model_dump()["lift_notice_at"] == NOW
    assert decide(request(status=IN_PROGRESS), domain.Complete(domain.results(tasks)), tasks).restricted is None


# -- timeouts and retries ------------------------------------------------------------------------


def test_a_timed_out_task_is_sent_again_then_failed() -> None:
    late = NOW + timedelta(hours=1)
    again = decide(request(status=IN_PROGRESS), domain.TimeOut("task-billing"), [task("billing")], now=late)
    [send] = again.sends
    assert send.attempt == 2 and again.task_updates[0].fields["timeout_at"] == late + timedelta(seconds=240)
    last = decide(request(status=IN_PROGRESS), domain.TimeOut("task-billing"), [task("billing", attempt=3)], now=late)
    assert not last.sends and last.task_updates[0].fields["status"] == TASK_FAILED
    assert decide(request(status=IN_PROGRESS), domain.TimeOut("task-billing"), [task("billing")]).unchanged


def test_retry_per_state() -> None:
    tasks = [task("billing", TASK_FAILED, attempt=3), task("registry", TASK_DONE)]
    change = decide(request(status=FAILED), domain.Retry("billing", "operator"), tasks)
    [new] = change.new_tasks
    assert change.status == IN_PROGRESS and new.attempt == 4 and new.supersedes == "task-billing"
    assert change.fields == {"completed_at": None}
    with pytest.raises(NotRetriable):
        decide(request(status=FAILED), domain.Retry("registry", "operator"), tasks)
    with pytest.raises(NotRetriable):
        decide(request(status=FAILED), domain.Retry("nobody", "operator"), tasks)
    for status in (RECEIVED, COMPLETED, CANCELLED):
        with pytest.raises(WrongState):
            decide(request(status=status), domain.Retry("billing", "operator"), tasks)


# -- deadlines, cancel ---------------------------------------------------------------------------


def test_extend_once_within_the_first_month() -> None:
    change = decide(request(status=IN_PROGRESS), domain.Extend("dpo", "complex"))
    assert change.fields["due_at"] == domain.extended_due_at(NOW)
    # The subject is told, with the reason (Art. 12(3)): dsar.extended on dsar.events.v1.
    [told] = change.events
    assert told.event_type == "dsar.extended"
    assert told.data.model_dump() == {
        "request_id": "r1", "kind": "access", "due_at": domain.extended_due_at(NOW), "reason": "complex",
        "extended_at": NOW,
    }  # fmt: skip
    with pytest.raises(AlreadyExtended):
        decide(request(status=IN_PROGRESS, extended_at=NOW), domain.Extend("dpo", "again"))
    with pytest.raises(ExtensionTooLate):
        decide(request(status=IN_PROGRESS), domain.Extend("dpo", "late"), now=NOW + timedelta(days=40))
    with pytest.raises(WrongState):
        decide(request(status=COMPLETED), domain.Extend("dpo", "done"))


def test_overdue_once_and_only_unanswered() -> None:
    late = NOW + timedelta(days=40)
    change = decide(request(status=IN_PROGRESS), domain.MarkOverdue(), now=late)
    assert [e.event_type for e in change.events] == ["dsar.overdue"]
    assert decide(request(status=IN_PROGRESS, overdue_at=late), domain.MarkOverdue(), now=late).unchanged
    assert decide(request(status=COMPLETED), domain.MarkOverdue(), now=late).unchanged
    assert decide(request(status=IN_PROGRESS), domain.MarkOverdue()).unchanged


@pytest.mark.parametrize("status", STATUSES)
def test_cancel_per_state(status: str) -> None:
    tasks = [task("billing"), task("registry", TASK_DONE)]
    if status in (*OPEN_STATUSES, FAILED):
        change = decide(request(status=status), domain.Cancel("operator"), tasks)
        assert change.status == CANCELLED and change.destroy_keys == ("input", "result")
        assert [u.task_id for u in change.task_updates] == ["task-billing"]
    else:
        with pytest.raises(WrongState):
            decide(request(status=status), domain.Cancel("operator"), tasks)


# -- intake --------------------------------------------------------------------------------------


def test_a_correction_naming_no_such_section_is_a_problem_naming_the_field() -> None:
    assert domain.intake_problem({"corrections": {"contact": {}}}) is None
    assert domain.intake_problem({"kind": "access"}) is None
    problem = domain.intake_problem({"corrections": {"contact": {}, "shoe_size": {"x": 1}}})
    assert problem is not None and problem.startswith("data.corrections.shoe_size:")
    odd = domain.intake_problem({"corrections": {"Matti Meikäläinen": 1}})
    assert odd is not None and "Matti" not in odd


def test_a_rectification_touches_the_categories_of_its_sections() -> None:
    assert domain.rectification_scope(["contact"]) == ["contact"]
    assert domain.rectification_scope(["account", "person", "contact_person_for"]) == ["basic", "contact_person"]
    assert set(planned("rectification", domain.rectification_scope(["contact_person_for"]))) == {"registry"}
