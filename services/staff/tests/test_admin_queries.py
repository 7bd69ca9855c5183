"""What the staff console's administrative pages read and record: the audit log searched by
customer, user and time and paged; the chain check with its progress; the accuracy report's
follow-up with its audit row. On the real database of the module's suite."""

from __future__ import annotations

from datetime import timedelta

import pytest
from staff_support import Suite

from lampo.staff.domain import AuditEntry
from lampo.staff.errors import InvalidInput


async def test_who_read_a_customer_is_found_by_number_user_and_time_and_paged(suite: Suite) -> None:
    access = suite.staff.access
    customer, other = "ADM-900001", "ADM-900002"
    start = suite.clock.now()
    for _ in range(5):
        await access.audit(AuditEntry("reader.one", "subject_read", "http", customer_number=customer,
                                      categories=("basic",)))  # fmt: skip
        suite.clock.advance(timedelta(minutes=1))
    await access.audit(AuditEntry("reader.two", "subject_read", "http", customer_number=customer))
    await access.audit(AuditEntry("reader.one", "subject_read", "http", customer_number=other))

    rows, after = await access.search_audit("auditor.user", customer_number=customer, limit=4)
    assert [r["actor"] for r in rows] == ["reader.two", "reader.one", "reader.one", "reader.one"]
    assert all(r["customer_number"] == customer for r in rows) and after is not None
    rest, last = await access.search_audit("auditor.user", customer_number=customer, before_seq=after, limit=4)
    assert [r["actor"] for r in rest] == ["reader.one", "reader.one"] and last is None
    assert {r["seq"] for r in rows}.isdisjoint(r["seq"] for r in rest)

    by_user, _ = await access.search_audit("auditor.user", actor="reader.two")
    assert [(r["actor"], r["customer_number"]) for r in by_user] == [("reader.two", customer)]
    window, _ = await access.search_audit(
        "auditor.user", customer_number=customer, since=start + timedelta(seconds=30),
        until=start + timedelta(minutes=3),
    )  # fmt: skip
    assert len(window) == 2  # the reads at +1 and +2 minutes

    # Each search is itself in the log: who searched for whom.
    searches, _ = await access.search_audit("auditor.user", actor="auditor.user", customer_number=customer)
    assert searches and {r["action"] for r in searches} == {"audit_searched"}
    with pytest.raises(InvalidInput, match="until"):
        await access.search_audit("auditor.user", since=start, until=start)


async def test_the_chain_check_reports_its_progress(suite: Suite) -> None:
    access = suite.staff.access
    for n in range(1100):  # past one progress step
        await access.audit(AuditEntry("bulk.reader", "subject_read", "http", customer_number=f"ADM-{n}"))
    seen: list[tuple[str, int, int]] = []
    report = await access.verify_audit(None, require_head=False, progress=lambda *p: seen.append(p))
    assert report.ok and report.rows >= 1100
    assert ("checking", 0, report.rows) in seen
    assert any(phase == "reading" and done == 1000 and total >= 1100 for phase, done, total in seen)
    assert any(phase == "checking" and done == 1000 for phase, done, total in seen)


async def test_an_accuracy_followup_is_recorded_with_its_audit_row(suite: Suite) -> None:
    access = suite.staff.access
    followup = await access.record_followup("dpo.user", "ADM-900010", "unconfirmed_contact", "customer_contacted")
    (latest, *_) = await access.followups()
    assert latest["id"] == followup and latest["username"] == "dpo.user"
    assert (latest["customer_number"], latest["finding"], latest["outcome"]) == (
        "ADM-900010", "unconfirmed_contact", "customer_contacted",
    )  # fmt: skip
    rows, _ = await access.search_audit("auditor.user", customer_number="ADM-900010")
    assert [(r["actor"], r["action"], r["detail"]) for r in rows if r["action"] == "accuracy_followup"] == [
        ("dpo.user", "accuracy_followup", {"finding": "unconfirmed_contact", "outcome": "customer_contacted"})
    ]
    with pytest.raises(InvalidInput, match="outcome"):
        await access.record_followup("dpo.user", "ADM-900010", "unconfirmed_contact", "ignored")
    with pytest.raises(InvalidInput, match="finding"):
        await access.record_followup("dpo.user", "ADM-900010", "wrong", "corrected")
