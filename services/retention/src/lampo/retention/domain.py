"""The retention model: clocks, legal holds and purge tasks. No Kafka, no SQL."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from lampo.clock import FINNISH_TIME
from lampo.contracts._base import Identifier, OutboundContract, Text, Timestamp
from lampo.contracts.categories import Category
from lampo.contracts.privacy import PrivacyTask, TaskSubject

HOLDS_TOPIC: Final = "retention.holds.v1"
HOLD_STATE_TYPE: Final = "legal_hold.state"
SOURCE: Final = "urn:lampo:retention"


# -- legal holds ---------------------------------------------------------------------------------


class HeldData(OutboundContract):
    """One standing hold, as published on ``retention.holds.v1``."""

    hold_id: Identifier
    categories: list[Category]
    """Empty: every category is held."""
    case_reference: Text
    authority: Text
    placed_at: Timestamp


class HoldState(OutboundContract):
    """``legal_hold.state`` (key customer_number): the customer's *current* holds, published after
    every change on the compacted ``retention.holds.v1``; an empty list after the last release."""

    customer_number: Identifier
    holds: list[HeldData]


def hold_covers(hold_categories: Sequence[str], category: str) -> bool:
    """A hold with no categories holds everything."""
    return not hold_categories or category in hold_categories


# -- clocks --------------------------------------------------------------------------------------


def financial_year_end(at: datetime, end_month: int = 12) -> datetime:
    """The end of the financial year containing ``at`` (Finnish time), as the first instant of
    the next financial year: a 6-year period added to it ends on the last day kept + 1."""
    local = at.astimezone(FINNISH_TIME)
    year = local.year if local.month <= end_month else local.year + 1
    next_month = end_month % 12 + 1
    next_year = year + 1 if end_month == 12 else year
    return datetime(next_year, next_month, 1, tzinfo=FINNISH_TIME)


# -- sweeps --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DueItem:
    """Data of one category that one rule says must go now (no hold covers it)."""

    customer_number: str
    subject_id: str
    rule: str
    trigger: str
    category: str
    participant: str
    trigger_at: datetime
    due_at: datetime


@dataclass(frozen=True, slots=True)
class PlannedPurge:
    task: PrivacyTask
    items: tuple[DueItem, ...]


def task_id_of(participant: str, customer_number: str, items: Iterable[DueItem]) -> str:
    """Deterministic per (participant, subject, categories, clocks): a retried sweep batch sends
    the same id (participants answer a repeated task again), a renewed clock a new one."""
    parts = sorted(f"{i.rule}@{i.trigger_at.isoformat()}" for i in items)
    digest = hashlib.sha256("|".join([participant, customer_number, *parts]).encode()).hexdigest()
    return f"purge-{digest[:32]}"


_CATEGORY_ORDER: Final = {c.value: n for n, c in enumerate(Category)}


def category_order(categories: Iterable[str]) -> list[str]:
    """Each category once, in the data map's category order (as tasks name them)."""
    return sorted(set(categories), key=_CATEGORY_ORDER.__getitem__)


def purge_task(
    *,
    sweep_id: str,
    task_id: str,
    participant: str,
    customer_number: str,
    subject_id: str,
    categories: Iterable[str],
    now: datetime,
    deadline: timedelta,
) -> PrivacyTask:
    """The ``purge`` task for one participant and customer number, naming every due category
    once, in the data map's category order."""
    return PrivacyTask(
        request_id=sweep_id,
        task_id=task_id,
        participant=participant,
        kind="purge",
        subject=TaskSubject(subject_id=subject_id, customer_numbers=[customer_number]),
        categories=[Category(c) for c in category_order(categories)],
        attempt=1,
        deadline=now + deadline,
    )


def plan_purges(items: Iterable[DueItem], *, sweep_id: str, now: datetime, deadline: timedelta) -> list[PlannedPurge]:
    """One ``purge`` task per participant and customer number, naming every due category.
    (The sweep does the same grouping in SQL, ``store.issue_purges``; the tests hold the two equal.)"""
    groups: dict[tuple[str, str], list[DueItem]] = defaultdict(list)
    for item in items:
        groups[(item.participant, item.customer_number)].append(item)
    planned = []
    for (participant, customer_number), group in sorted(groups.items()):
        task = purge_task(
            sweep_id=sweep_id,
            task_id=task_id_of(participant, customer_number, group),
            participant=participant,
            customer_number=customer_number,
            subject_id=group[0].subject_id,
            categories=[i.category for i in group],
            now=now,
            deadline=deadline,
        )
        planned.append(PlannedPurge(task, tuple(group)))
    return planned
