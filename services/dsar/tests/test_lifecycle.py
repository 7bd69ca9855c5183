"""Intake from dsar.requests.v1, the lifecycle, its events and its stored transitions."""

from __future__ import annotations

from typing import Any

from dsar_support import (
    ParticipantProcess,
    data_of,
    dsar_service,
    event,
    for_request,
    ours,
    participants,
    submitted,
    type_of,
)

from lampo.contracts.catalog import DSAR_EVENTS, DSAR_REQUESTS
from lampo.contracts.privacy import PrivacyTask
from lampo.participant import TaskOutcome
from lampo.testing import Producer, TopicReader


async def erase(conn: Any, task: PrivacyTask) -> TaskOutcome:
    return TaskOutcome(erased={c: 1 for c in task.categories[:1]})


async def access(conn: Any, task: PrivacyTask) -> TaskOutcome:
    return TaskOutcome(result={"contact": [{"email_known": True, "origin": "subject", "legal_basis": "contract"}]})


def simple(name: str) -> ParticipantProcess:
    return ParticipantProcess(name, {"erasure": erase, "access": access, "restriction": erase, "rectification": erase})


async def test_kafka_request_is_accepted_fanned_out_completed_and_every_transition_stored(registry) -> None:
    body = submitted("restriction")
    registry.add(body["identifiers"]["customer_number"])
    rid = body["request_id"]
    async with (
        participants(simple("alpha"), simple("beta")),
        dsar_service(registry, participants=["alpha", "beta"]) as env,
        TopicReader(DSAR_EVENTS) as events,
        Producer() as producer,
    ):
        await producer.send(DSAR_REQUESTS, rid, event("dsar.submitted", body))
        [accepted] = await events.wait_for(for_request(rid, "dsar.accepted"))
        [completed] = await events.wait_for(for_request(rid, "dsar.completed"))
        view = await env.request(rid)

    assert data_of(accepted)["participants"] == ["alpha", "beta"]
    assert data_of(accepted)["due_at"].startswith("2026-12-28T09:58")
    done = data_of(completed)
    assert done["status"] == "completed"
    assert set(done["results"]) == {"alpha", "beta"}
    assert all(r["status"] == "done" for r in done["results"].values())
    steps = [(h["from_status"], h["to_status"], h["actor"]) for h in view["history"]]
    assert steps == [
        (None, "received", "urn:system:portal"),
        ("received", "accepted", "system"),
        ("accepted", "in_progress", "system"),
        ("in_progress", "completed", "system"),
    ]
    assert all(h["at"] is not None for h in view["history"])
    assert [type_of(r) for r in events.records if r.key == rid.encode() and ours(r)] == [
        "dsar.accepted",
        "dsar.completed",
    ]
