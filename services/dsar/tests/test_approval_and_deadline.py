"""Approval of erasure (and kinds configured so), and the legal deadline: overdue, extension."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dsar_support import START, data_of, dsar_service, event, for_request, ours, submitted

from lampo.contracts.catalog import DSAR_EVENTS, DSAR_REQUESTS
from lampo.dsar.domain import add_months, due_at, extended_due_at
from lampo.dsar.errors import AlreadyExtended, ExtensionTooLate
from lampo.messaging.topics import dlq
from lampo.testing import Producer, TopicReader, header, signed_headers


def test_the_deadline_is_one_calendar_month_or_the_months_last_day() -> None:
    assert due_at(datetime(2026, 11, 28, 9, 58, tzinfo=UTC)) == datetime(2026, 12, 28, 9, 58, tzinfo=UTC)
    assert due_at(datetime(2027, 1, 31, tzinfo=UTC)) == datetime(2027, 2, 28, tzinfo=UTC)
    assert due_at(datetime(2028, 1, 31, tzinfo=UTC)) == datetime(2028, 2, 29, tzinfo=UTC)  # leap year
    assert due_at(datetime(2026, 12, 15, tzinfo=UTC)) == datetime(2027, 1, 15, tzinfo=UTC)
    assert extended_due_at(datetime(2027, 1, 31, tzinfo=UTC)) == datetime(2027, 4, 30, tzinfo=UTC)
    assert add_months(datetime(2026, 3, 31, tzinfo=UTC), 1) == datetime(2026, 4, 30, tzinfo=UTC)


async def test_erasure_waits_for_an_authorised_approver_and_a_denial_rejects_it(registry) -> None:
    approved, denied, outsider = submitted("erasure"), submitted("erasure"), submitted("erasure")
    for body in (approved, denied, outsider):
        registry.add(body["identifiers"]["customer_number"])
    async with (
        dsar_service(registry, participants=["nobody-answers"], approvers=["toimitusjohtaja"]) as env,
        TopicReader(DSAR_EVENTS) as events,
        TopicReader(dlq(DSAR_REQUESTS)) as dead,
        Producer() as producer,
    ):
        for body in (approved, denied, outsider):
            await producer.send(DSAR_REQUESTS, body["request_id"], event("dsar.submitted", body))
        for body in (approved, denied, outsider):
            [waiting] = await events.wait_for(for_request(body["request_id"], "dsar.awaiting_approval"))
            assert data_of(waiting) == {"request_id": body["request_id"], "kind": "erasure"}
        at = START.isoformat()
        ok = {"request_id": approved["request_id"], "approved_by": "toimitusjohtaja", "approved_at": at}
        no = {"request_id": denied["request_id"], "denied_by": "toimitusjohtaja", "reason": "identity in doubt"}
        wrong = {"request_id": outsider["request_id"], "approved_by": "harjoittelija", "approved_at": at}
        # Signed as the staff service signs them (lampo.signing): only the approver's name is wrong.
        await producer.send(DSAR_REQUESTS, approved["request_id"], event("dsar.approved", ok), signer="staff")
        await producer.send(DSAR_REQUESTS, denied["request_id"], event("dsar.denied", no), signer="staff")
        await producer.send(DSAR_REQUESTS, outsider["request_id"], event("dsar.approved", wrong), signer="staff")
        await events.wait_for(for_request(approved["request_id"], "dsar.accepted"))
        [rejected] = await events.wait_for(for_request(denied["request_id"], "dsar.rejected"))
        [refused] = await dead.wait_for(lambda r: r.key == outsider["request_id"].encode())
        view = await env.request(approved["request_id"])
        outsider_status = await env.status(outsider["request_id"])

    assert data_of(rejected)["reason"] == "denied"
    assert header(refused, "error.reason") == "not_authorised"
    assert outsider_status == "awaiting_approval"
    assert view["approved_by"] == "toimitusjohtaja"
    steps = [(h["from_status"], h["to_status"], h["actor"]) for h in view["history"]]
    assert ("received", "awaiting_approval", "system") in steps
    assert ("awaiting_approval", "accepted", "toimitusjohtaja") in steps


async def test_an_approval_or_denial_not_signed_by_staff_is_refused_and_changes_nothing(registry) -> None:
    """CONTRACTS.md "Authenticity": dsar.approved / dsar.denied sent to Kafka by hand (unsigned,
    signed with another key under staff's name, or signed by another service) are dead-lettered
    ``unauthenticated``; the request stays awaiting approval."""
    body = submitted("erasure")
    registry.add(body["identifiers"]["customer_number"])
    rid = body["request_id"]
    at = START.isoformat()
    async with (
        dsar_service(registry, participants=["nobody-answers"]) as env,
        TopicReader(DSAR_EVENTS) as events,
        TopicReader(dlq(DSAR_REQUESTS)) as dead,
        Producer() as producer,
    ):
        await producer.send(DSAR_REQUESTS, rid, event("dsar.submitted", body))  # a submission needs no signature
        await events.wait_for(for_request(rid, "dsar.awaiting_approval"))
        approval = event("dsar.approved", {"request_id": rid, "approved_by": "toimitusjohtaja", "approved_at": at})
        forged = signed_headers(approval.to_bytes(), "staff", key_of="coordinator")
        denial = event("dsar.denied", {"request_id": rid, "denied_by": "toimitusjohtaja", "reason": "no"})
        await producer.send(DSAR_REQUESTS, rid, approval)  # unsigned
        await producer.send(DSAR_REQUESTS, rid, approval, headers=forged)  # staff's name, another key
        await producer.send(DSAR_REQUESTS, rid, approval, signer="coordinator")  # a valid key, not staff's
        await producer.send(DSAR_REQUESTS, rid, denial, signer="retention")
        refused = await dead.wait_for(lambda r: r.key == rid.encode(), count=4)
        await events.quiet(1.0)
        status = await env.status(rid)

    assert [header(r, "error.reason") for r in refused] == ["unauthenticated"] * 4
    details = [header(r, "error.detail") or "" for r in refused]
    assert "no signature" in details[0] and "does not verify" in details[1]
    assert "must be signed by staff" in details[2] and "not 'retention'" in details[3]
    assert status == "awaiting_approval"


async def test_auto_approved_kinds_do_not_wait(registry) -> None:
    body = submitted("erasure")
    registry.add(body["identifiers"]["customer_number"])
    async with (
        dsar_service(registry, participants=["nobody-answers"], auto_approve=["erasure"]),
        TopicReader(DSAR_EVENTS) as events,
        Producer() as producer,
    ):
        await producer.send(DSAR_REQUESTS, body["request_id"], event("dsar.submitted", body))
        await events.wait_for(for_request(body["request_id"], "dsar.accepted"))
    assert not [
        r
        for r in events.records
        if data_of(r).get("request_id") == body["request_id"] and "awaiting" in r.value.decode() and ours(r)
    ]


async def test_overdue_is_published_once_and_an_extension_is_recorded_once_within_the_first_month(registry) -> None:
    late, extended = submitted("restriction"), submitted("restriction")
    for body in (late, extended):
        registry.add(body["identifiers"]["customer_number"])
    async with (
        dsar_service(registry, participants=["nobody-answers"], task_timeout_s=10 * 24 * 3600) as env,
        TopicReader(DSAR_EVENTS) as events,
        Producer() as producer,
    ):
        for body in (late, extended):
            await producer.send(DSAR_REQUESTS, body["request_id"], event("dsar.submitted", body))
            await events.wait_for(for_request(body["request_id"], "dsar.accepted"))
        env.clock.advance(timedelta(days=20))
        async with env.pool.acquire() as conn, conn.transaction():
            await env.coordinator.extend(
                conn, extended["request_id"], reason="records in three archives", by="dpo:liisa"
            )
        async with env.pool.acquire() as conn:
            with pytest.raises(AlreadyExtended):
                await env.coordinator.extend(conn, extended["request_id"], reason="again", by="dpo:liisa")
        env.clock.advance(timedelta(days=11))  # past 28 December
        await env.coordinator.tick()
        await env.coordinator.tick()
        [overdue] = await events.wait_for(for_request(late["request_id"], "dsar.overdue"))
        await events.quiet(1.0)
        async with env.pool.acquire() as conn:
            with pytest.raises(ExtensionTooLate):
                await env.coordinator.extend(conn, late["request_id"], reason="too late", by="dpo:liisa")
        view = await env.request(extended["request_id"])

    assert data_of(overdue) == {"request_id": late["request_id"], "due_at": "2026-12-28T09:58:00Z"}
    assert (
        len(
            [
                r
                for r in events.records
                if r.key == late["request_id"].encode() and "dsar.overdue" in r.value.decode() and ours(r)
            ]
        )
        == 1
    )
    assert not [
        r
        for r in events.records
        if r.key == extended["request_id"].encode() and "dsar.overdue" in r.value.decode() and ours(r)
    ]
    assert view["due_at"] == datetime(2027, 2, 28, 9, 58, tzinfo=UTC)
    assert view["extended"]["reason"] == "records in three archives" and view["extended"]["by"] == "dpo:liisa"
