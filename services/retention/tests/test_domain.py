"""Rules of the retention model, without broker or database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lampo.retention.domain import FINNISH_TIME, DueItem, financial_year_end, hold_covers, plan_purges


def test_financial_year_end_is_the_first_instant_of_the_next_year_in_finnish_time() -> None:
    assert financial_year_end(datetime(2026, 3, 10, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=FINNISH_TIME)
    # 31 Dec 23:30 UTC is already 1 Jan in Finland: the next financial year
    assert financial_year_end(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == datetime(2028, 1, 1, tzinfo=FINNISH_TIME)


def test_financial_year_ending_in_june() -> None:
    assert financial_year_end(datetime(2026, 3, 10, tzinfo=UTC), 6) == datetime(2026, 7, 1, tzinfo=FINNISH_TIME)
    assert financial_year_end(datetime(2026, 8, 10, tzinfo=UTC), 6) == datetime(2027, 7, 1, tzinfo=FINNISH_TIME)


def test_a_hold_without_categories_holds_everything() -> None:
    assert hold_covers([], "billing")
    assert hold_covers(["billing"], "billing")
    assert not hold_covers(["billing"], "contact")


def _item(customer: str, rule: str, category: str, participant: str) -> DueItem:
    at = datetime(2020, 1, 1, tzinfo=UTC)
    return DueItem(
        customer, f"subj-{customer}", rule, "relationship_ended", category, participant, at, at + timedelta(days=1)
    )


def test_one_purge_task_per_participant_and_customer_with_every_due_category() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    items = [
        _item("1", "basic-after-relationship", "basic", "registry"),
        _item("1", "contact-after-relationship", "contact", "registry"),
        _item("1", "call-recordings", "customer_relationship", "recordings"),
        _item("2", "basic-after-relationship", "basic", "registry"),
    ]
    planned = plan_purges(items, sweep_id="sweep-x", now=now, deadline=timedelta(days=7))
    tasks = {(p.task.participant, p.task.subject.customer_numbers[0]): p.task for p in planned}
    assert set(tasks) == {("registry", "1"), ("recordings", "1"), ("registry", "2")}
    one = tasks[("registry", "1")]
    assert one.kind == "purge" and one.request_id == "sweep-x" and one.attempt == 1
    assert [c.value for c in one.categories] == ["basic", "contact"]
    assert one.subject.subject_id == "subj-1" and one.deadline == now + timedelta(days=7)
    assert len({t.task_id for t in tasks.values()}) == 3
    # deterministic: the same due items give the same task ids in another run
    again = plan_purges(list(reversed(items)), sweep_id="sweep-y", now=now, deadline=timedelta(days=7))
    assert {p.task.task_id for p in again} == {t.task_id for t in tasks.values()}
