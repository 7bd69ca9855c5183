"""The request's state machine under random command sequences (hypothesis): every change it makes
is in the table, a final request never moves again, a completed request has every task
answered, and the deadline moves forward at most once (an extension is granted once). No broker, no database: the changes are
applied to an in-memory request the way the coordinator applies them to its tables."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lampo.dsar import domain
from lampo.dsar.errors import DsarError
from lampo.dsar.settings import DEFAULT_PARTICIPANT_CATEGORIES, DEFAULT_PARTICIPANT_KINDS

START = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
PARTICIPANTS = ("registry", "billing", "recordings", "consent")
POLICY = domain.Policy(
    data_map=domain.DataMap(PARTICIPANTS, DEFAULT_PARTICIPANT_CATEGORIES, DEFAULT_PARTICIPANT_KINDS),
    approval_required=("erasure",),
    task_max_attempts=2,
)
_REQUEST_FIELDS = {f for f in domain.Request.__dataclass_fields__}
_TASK_FIELDS = {f for f in domain.Task.__dataclass_fields__}


@dataclass(frozen=True)
class Answer:
    """A participant's ack (what the coordinator's batched ack aggregation writes to a task)."""

    index: int
    done: bool


@dataclass
class Model:
    request: domain.Request
    tasks: dict[str, domain.Task] = field(default_factory=dict)
    history: list[domain.Transition] = field(default_factory=list)
    now: datetime = START
    due_changes: int = 0
    ids: Any = field(default_factory=lambda: itertools.count(1))

    def current(self) -> list[domain.Task]:
        return list(self.tasks.values())

    def apply(self, change: domain.Change) -> None:
        before = self.request
        fields = {k: v for k, v in change.fields.items() if k in _REQUEST_FIELDS}
        if "customer_numbers" in fields:
            fields["customer_numbers"] = tuple(fields["customer_numbers"])
        self.request = replace(self.request, status=change.status, **fields)
        if self.request.due_at != before.due_at:
            assert self.request.due_at > before.due_at, "the deadline only moves forward"
            self.due_changes += 1
        if "extended_at" in change.fields:
            assert before.extended_at is None, "a deadline is extended once only"
        for update in change.task_updates:
            t = self.tasks[update.task_id]
            if update.fields.get("current") is False:
                del self.tasks[update.task_id]
                continue
            self.tasks[update.task_id] = replace(t, **{k: v for k, v in update.fields.items() if k in _TASK_FIELDS})
        for new in change.new_tasks:
            self.tasks[new.task_id] = domain.Task(
                new.task_id, new.participant, new.kind, new.categories, new.status, new.attempt, new.timeout_at,
                new.hold_retained,
            )  # fmt: skip
        self.history.extend(change.transitions)


def initial(kind: str, lift: bool) -> domain.Request:
    return domain.Request(
        request_id="r", kind=kind, status=domain.RECEIVED, received_at=START, due_at=domain.due_at(START), lift=lift
    )


commands = st.one_of(
    st.builds(domain.Reject, st.sampled_from(["no_match", "invalid"]), st.just("identifiers: x")),
    st.builds(
        domain.Resolve, st.just("s-1"), st.just(("100001",)), st.just("person"), st.booleans()
    ),  # restricted or not
    st.builds(domain.ResolverDown, st.just("timeout")),
    st.builds(domain.Approve, st.sampled_from(["md", "cfo"]), st.just(START)),
    st.builds(domain.Deny, st.just("md"), st.just("unfounded")),
    st.just(domain.ReleaseHeld()),
    st.just("complete"),
    st.builds(Answer, st.integers(0, 3), st.booleans()),
    st.builds(domain.TimeOut, st.sampled_from(["t1", "t2", "t3", "t4", "t5"])),
    st.builds(domain.Retry, st.sampled_from(PARTICIPANTS), st.just("operator")),
    st.builds(domain.Extend, st.just("dpo"), st.just("complex")),
    st.just(domain.Cancel("operator")),
    st.just(domain.MarkOverdue()),
    st.integers(1, 40).map(lambda days: timedelta(days=days)),  # time passes
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["access", "portability", "erasure", "rectification", "restriction", "objection"]),
    lift=st.booleans(),
    steps=st.lists(commands, max_size=30),
)
def test_random_command_sequences_keep_the_lifecycle_rules(kind: str, lift: bool, steps: list[Any]) -> None:
    model = Model(initial(kind, lift and kind == "restriction"))
    for step in steps:
        was = model.request.status
        if isinstance(step, timedelta):
            model.now += step
            continue
        if isinstance(step, Answer):
            open_tasks = [t for t in model.current() if t.status == domain.TASK_OPEN]
            if open_tasks:
                t = open_tasks[step.index % len(open_tasks)]
                status = domain.TASK_DONE if step.done else domain.TASK_FAILED
                model.tasks[t.task_id] = replace(t, status=status, error=None if step.done else "broken")
            continue
        command = domain.Complete(domain.results(model.current())) if step == "complete" else step
        try:
            change = domain.decide(
                model.request, model.current(), command, now=model.now, policy=POLICY,
                new_id=lambda: f"t{next(model.ids)}",
            )  # fmt: skip
        except DsarError:
            continue  # refused: nothing changes
        model.apply(change)
        for t in change.transitions:
            assert domain.allowed(t.from_status, t.to_status), (t.from_status, t.to_status)
        moves = [t for t in change.transitions if t.from_status != t.to_status]
        if moves:
            assert moves[0].from_status == was and moves[-1].to_status == model.request.status
            for a, b in itertools.pairwise(moves):
                assert a.to_status == b.from_status
        else:
            assert model.request.status == was
        if was in domain.FINAL_STATUSES:
            assert model.request.status == was, "a final request never moves again"
        if model.request.status in (domain.COMPLETED, domain.COMPLETED_WITH_RETENTION, domain.FAILED):
            # finished (or failed) only once every current task has its answer
            assert all(t.status in (domain.TASK_DONE, domain.TASK_FAILED) for t in model.current())
        if model.request.status == domain.IN_PROGRESS:
            assert not any(t.status == domain.TASK_HELD for t in model.current())
    assert model.due_changes <= 1
    assert all(domain.allowed(t.from_status, t.to_status) for t in model.history)
