"""Bad input at intake: each case has a defined answer, tested here."""

from __future__ import annotations

import json
from datetime import timedelta

from dsar_support import data_of, dsar_service, event, for_request, ours, submitted, synthetic_identity_code

from lampo.contracts.catalog import DSAR_EVENTS, DSAR_REQUESTS
from lampo.messaging.topics import dlq
from lampo.testing import Producer, TopicReader, eventually, header


async def test_unverified_unknown_subject_and_contract_breaking_requests_are_rejected_with_reasons(registry) -> None:
    unverified = submitted("access", verified=False)
    unknown = submitted("access")  # nobody in the registry has this customer number
    unknown_kind = submitted("teleport")
    no_identifiers = submitted("access", identifiers={})
    bad_pic = submitted("erasure", identifiers={"personal_identity_code": "131052-308U"})
    bad_email = submitted("access", identifiers={"email": "not-an-address"})
    invalid = [unknown_kind, no_identifiers, bad_pic, bad_email]
    async with (
        dsar_service(registry) as env,
        TopicReader(DSAR_EVENTS) as events,
        TopicReader(dlq(DSAR_REQUESTS)) as dead,
        Producer() as producer,
    ):
        for body in [unverified, unknown, *invalid]:
            await producer.send(DSAR_REQUESTS, body["request_id"], event("dsar.submitted", body))
        answers = {}
        for body in [unverified, unknown, *invalid]:
            [answer] = await events.wait_for(for_request(body["request_id"], "dsar.rejected"))
            answers[body["request_id"]] = data_of(answer)
        dead_records = await dead.wait_for(lambda r: r.key.decode() in {b["request_id"] for b in invalid}, count=4)
        views = {b["request_id"]: await env.request(b["request_id"]) for b in [unverified, unknown, *invalid]}

    assert answers[unverified["request_id"]]["reason"] == "unverified"
    assert answers[unknown["request_id"]]["reason"] == "no_match"
    for body in invalid:
        assert answers[body["request_id"]]["reason"] == "invalid"
        assert views[body["request_id"]]["status"] == "rejected"
    assert "data.kind" in answers[unknown_kind["request_id"]]["detail"]
    assert "data.identifiers" in answers[no_identifiers["request_id"]]["detail"]
    assert "invalid_personal_identity_code" in answers[bad_pic["request_id"]]["detail"]
    assert "invalid_email" in answers[bad_email["request_id"]]["detail"]
    reasons = {r.key.decode(): header(r, "error.reason") for r in dead_records}
    assert reasons[bad_pic["request_id"]] == "invalid_personal_identity_code"
    assert reasons[unknown_kind["request_id"]] == "schema"
    # never the personal data itself in an answer
    assert all("131052-308U" not in json.dumps(a) and "not-an-address" not in json.dumps(a) for a in answers.values())
    assert views[unverified["request_id"]]["history"][-1]["to_status"] == "rejected"


async def test_a_duplicate_request_id_is_answered_with_the_existing_request(registry) -> None:
    accepted = submitted("restriction")
    registry.add(accepted["identifiers"]["customer_number"])
    rejected = submitted("access", verified=False)
    async with (
        dsar_service(registry, participants=["nobody-answers"]) as env,
        TopicReader(DSAR_EVENTS) as events,
        Producer() as producer,
    ):
        for body in (accepted, rejected):
            await producer.send(DSAR_REQUESTS, body["request_id"], event("dsar.submitted", body))
        await events.wait_for(for_request(accepted["request_id"], "dsar.accepted"))
        await events.wait_for(for_request(rejected["request_id"], "dsar.rejected"))
        # the same request_ids again, in new events (new event ids), one with other content
        again = dict(accepted, kind="erasure")
        await producer.send(DSAR_REQUESTS, accepted["request_id"], event("dsar.submitted", again))
        await producer.send(DSAR_REQUESTS, rejected["request_id"], event("dsar.submitted", rejected))
        [first, second] = await events.wait_for(for_request(accepted["request_id"], "dsar.accepted"), count=2)
        [r1, r2] = await events.wait_for(for_request(rejected["request_id"], "dsar.rejected"), count=2)
        async with env.pool.acquire() as conn:
            rows = await conn.fetchval("SELECT count(*) FROM requests")
            kind = await conn.fetchval("SELECT kind FROM requests WHERE request_id = $1", accepted["request_id"])
        view = await env.request(accepted["request_id"])

    assert rows == 2 and kind == "restriction"
    assert data_of(first) == data_of(second)
    assert data_of(r1) == data_of(r2) and data_of(r2)["reason"] == "unverified"
    assert any("duplicate" in (h["detail"] or "") for h in view["history"])


async def test_a_registry_that_does_not_answer_makes_the_request_wait_not_fail(registry) -> None:
    body = submitted("restriction", identifiers={"personal_identity_code": synthetic_identity_code(7)})
    registry.add("100007", pic=synthetic_identity_code(7))
    await registry.stop()
    async with (
        dsar_service(registry, participants=["nobody-answers"]) as env,
        TopicReader(DSAR_EVENTS) as events,
        Producer() as producer,
    ):
        await producer.send(DSAR_REQUESTS, body["request_id"], event("dsar.submitted", body))

        async def waiting() -> bool:
            if await env.status(body["request_id"]) is None:
                return False
            view = await env.request(body["request_id"])
            return view["status"] == "received" and "registry unavailable" in (view["waiting_for"] or "")

        await eventually(waiting, timeout=20)
        await registry.start()
        env.clock.advance(timedelta(minutes=5))  # past the backoff
        await env.coordinator.tick()
        await events.wait_for(for_request(body["request_id"], "dsar.accepted"))
        view = await env.request(body["request_id"])
    assert view["subject_id"].startswith("s-")
    assert view["status"] == "in_progress"
    assert not any(
        r.key == body["request_id"].encode() and json.loads(r.value)["type"] == "dsar.rejected" and ours(r)
        for r in events.records
    )
