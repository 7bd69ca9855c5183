"""The HTTP API (submit, status, cancel, OpenAPI), the same request as the Kafka intake, and one
trace per request with a span per participant task. Who may call what, and claim which
verification: test_api_callers.py."""

from __future__ import annotations

from typing import Any

import httpx
from dsar_support import (
    ParticipantProcess,
    as_caller,
    data_of,
    dsar_service,
    event,
    for_request,
    participants,
    submitted,
)

from lampo.contracts.catalog import DSAR_EVENTS, DSAR_REQUESTS
from lampo.contracts.privacy import PrivacyTask
from lampo.participant import TaskOutcome
from lampo.testing import Producer, TopicReader, eventually

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def done(conn: Any, task: PrivacyTask) -> TaskOutcome:
    return TaskOutcome(erased={"contact": 1})


def client(env: Any, caller: str = "portal") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=env.dsar.runtime.app), base_url="http://dsar", headers=as_caller(caller)
    )


async def test_http_submit_status_cancel_openapi_and_the_same_request_over_kafka(registry) -> None:
    body = submitted("restriction")
    registry.add(body["identifiers"]["customer_number"])
    rid = body["request_id"]
    async with (
        dsar_service(registry, participants=["nobody-answers"]) as env,
        TopicReader(DSAR_EVENTS) as events,
        Producer() as producer,
        client(env) as http,
        client(env, "staff") as staff,
    ):
        created = await http.post(
            "/v1/requests", json={k: v for k, v in body.items() if k not in ("received_at", "channel")}
        )
        await events.wait_for(for_request(rid, "dsar.accepted"))
        await producer.send(DSAR_REQUESTS, rid, event("dsar.submitted", body))  # the same request over Kafka
        await events.wait_for(for_request(rid, "dsar.accepted"), count=2)
        again = await http.post("/v1/requests", json=body)
        status = await http.get(f"/v1/requests/{rid}")
        cancelled = await staff.post(f"/v1/requests/{rid}/cancel", json={"by": "asiakaspalvelu"})
        cancel_again = await staff.post(f"/v1/requests/{rid}/cancel")
        missing = await http.get("/v1/requests/req-none")
        invalid = await http.post(
            "/v1/requests", json=submitted("access", identifiers={"personal_identity_code": "131052-308U"})
        )
        openapi = (await http.get("/v1/openapi.json")).json()
        async with env.pool.acquire() as conn:
            count = await conn.fetchval("SELECT count(*) FROM requests WHERE request_id = $1", rid)

    assert created.status_code == 201 and created.json()["channel"] == "portal"
    assert created.json()["history"][0]["actor"] == "portal"
    assert registry.calls >= 1 and registry.refused == 0  # the coordinator presented its own credential
    assert again.status_code == 200 and count == 1
    view = status.json()
    assert view["status"] == "in_progress"
    assert view["participants"][0]["participant"] == "nobody-answers" and view["participants"][0]["first_sent_at"]
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["history"][-1]["actor"] == "asiakaspalvelu"
    assert cancel_again.status_code == 409 and cancel_again.json()["error"]["reason"] == "wrong_state"
    assert missing.status_code == 404 and missing.json()["error"]["reason"] == "unknown_request"
    assert invalid.status_code == 422 and invalid.json()["request"]["rejection"]["reason"] == "invalid"
    assert "131052-308U" not in invalid.text
    assert {"/v1/requests", "/v1/requests/{request_id}", "/v1/requests/{request_id}/cancel"} <= set(openapi["paths"])
    assert "DsarSubmitted" in openapi["components"]["schemas"]


async def test_a_request_is_one_trace_with_a_span_per_participant_task(registry) -> None:
    body = submitted("restriction")
    registry.add(body["identifiers"]["customer_number"])
    rid = body["request_id"]
    async with (
        participants(
            ParticipantProcess("t-one", {"restriction": done}), ParticipantProcess("t-two", {"restriction": done})
        ),
        dsar_service(registry, participants=["t-one", "t-two"]) as env,
        TopicReader(DSAR_EVENTS) as events,
        Producer() as producer,
    ):
        await producer.send(
            DSAR_REQUESTS, rid, event("dsar.submitted", body), traceparent=f"00-{TRACE_ID}-00f067aa0ba902b7-01"
        )
        [completed] = await events.wait_for(for_request(rid, "dsar.completed"))

        def acks_traced() -> bool:  # the ack's span ends after its commit, which dsar.completed may overtake
            return any(
                s.name == "process privacy.acks.v1" and s.attributes.get("lampo.request_id") == rid
                for s in env.spans.get_finished_spans()
            )

        await eventually(acks_traced, timeout=10)
        spans = env.spans.get_finished_spans()

    assert data_of(completed)["trace_id"] == TRACE_ID
    task_spans = [s for s in spans if s.name.startswith("dsar task ")]
    assert {s.name for s in task_spans} == {"dsar task t-one", "dsar task t-two"}
    assert all(format(s.context.trace_id, "032x") == TRACE_ID for s in task_spans)
    assert all(s.attributes["lampo.request_id"] == rid for s in task_spans)
    acks = [s for s in spans if s.name == "process privacy.acks.v1" and s.attributes.get("lampo.request_id") == rid]
    assert acks and all(format(s.context.trace_id, "032x") == TRACE_ID for s in acks)
    assert any(s.name == "dsar complete" and format(s.context.trace_id, "032x") == TRACE_ID for s in spans)
