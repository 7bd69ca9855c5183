"""Every kind of request on the real broker and database: planned to the participants the data map
names (stand-ins named so that no real participant on the shared broker picks their tasks up),
scope and lift carried to them, their effects carried back, a restriction lift told to the
subject before any store lifts it, bad input rejected at intake naming the field, and a subject
known only to a store resolved."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import uvicorn
from dsar_support import (
    DSAR_TOKEN,
    ParticipantProcess,
    as_caller,
    data_of,
    dsar_service,
    event,
    for_request,
    free_port,
    ours,
    participants,
    submitted,
    synthetic_identity_code,
    type_of,
)
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from lampo.contracts.catalog import DSAR_EVENTS, DSAR_REQUESTS, PRIVACY_TASKS
from lampo.contracts.privacy import Effect, PrivacyTask
from lampo.participant import TaskOutcome
from lampo.testing import Producer, TopicReader, eventually

REG, BILL, REC, CON = "k-registry", "k-billing", "k-recordings", "k-consent"
EVERY_KIND = ["access", "erasure", "rectification", "restriction", "objection"]
STORE_KINDS = ["access", "erasure", "rectification", "restriction"]
DATA_MAP: dict[str, Any] = {
    "participants": [REG, BILL, REC, CON],
    "participant_categories": {
        REG: ["basic", "contact_person", "contact", "customer_relationship", "services", "consumption"],
        BILL: ["billing", "basic", "contact"],
        REC: ["customer_relationship", "basic", "contact"],
        CON: ["customer_relationship", "other_consented", "contact"],
    },
    "participant_kinds": {REG: EVERY_KIND, BILL: STORE_KINDS, REC: STORE_KINDS, CON: EVERY_KIND},
}
ACTIONS = {"rectification": "rectified", "restriction": "restricted", "objection": "objection_recorded"}


class Store:
    """A participant that notes each task it ran and answers with an effect."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tasks: list[PrivacyTask] = []

    async def handle(self, conn: Any, task: PrivacyTask) -> TaskOutcome:
        self.tasks.append(task)
        action = "restriction_lifted" if task.lift else ACTIONS.get(task.kind, "nothing_held")
        return TaskOutcome(effects=[Effect(action=action, category=task.categories[0], items=1)])

    def process(self) -> ParticipantProcess:
        return ParticipantProcess(self.name, {kind: self.handle for kind in EVERY_KIND})

    def kinds(self, request_id: str) -> list[str]:
        return [t.kind for t in self.tasks if t.request_id == request_id]


def stores() -> dict[str, Store]:
    return {name: Store(name) for name in (REG, BILL, REC, CON)}


def client(env: Any) -> httpx.AsyncClient:
    """The dsar API as the portal calls it (the channel of ``submitted``), with its credential."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=env.dsar.runtime.app), base_url="http://dsar", headers=as_caller("portal")
    )


async def test_each_kind_goes_where_the_data_map_says_with_its_scope_and_its_effects_come_back(registry) -> None:
    rectify = submitted("rectification", corrections={"contact": {"email": "uusi@example.com"}})
    restrict = submitted("restriction", categories=["billing"])
    object_ = submitted("objection", scope="profiling")
    bodies = [rectify, restrict, object_]
    for body in bodies:
        registry.add(body["identifiers"]["customer_number"])
    team = stores()
    async with (
        participants(*(s.process() for s in team.values())),
        dsar_service(registry, **DATA_MAP),
        TopicReader(DSAR_EVENTS) as events,
        Producer() as producer,
    ):
        for body in bodies:
            await producer.send(DSAR_REQUESTS, body["request_id"], event("dsar.submitted", body))
        completed = {}
        for body in bodies:
            [done] = await events.wait_for(for_request(body["request_id"], "dsar.completed"))
            completed[body["request_id"]] = data_of(done)

    def went_to(body: dict[str, Any]) -> set[str]:
        return {name for name, s in team.items() if s.kinds(body["request_id"])}

    assert went_to(rectify) == {REG, BILL, REC, CON}
    assert went_to(restrict) == {BILL}  # only billing holds billing data
    assert went_to(object_) == {REG, CON}  # recorded in the consent ledger, acted on by the register
    [objection_task] = [t for t in team[CON].tasks if t.request_id == object_["request_id"]]
    assert objection_task.scope == "profiling" and objection_task.kind == "objection"
    [billing_fix] = [t for t in team[BILL].tasks if t.request_id == rectify["request_id"]]
    assert billing_fix.corrections is not None and billing_fix.categories == ["contact"]
    for body in bodies:
        done = completed[body["request_id"]]
        assert done["status"] == "completed", done
        assert set(done["results"]) == went_to(body)
        assert all(r["effects"][0]["action"] == ACTIONS[body["kind"]] for r in done["results"].values())
        assert done["lift_notice_at"] is None


async def test_a_lift_tells_the_subject_first_then_lifts_and_clears_the_restriction(registry) -> None:
    place = submitted("restriction")
    customer_number = place["identifiers"]["customer_number"]
    subject_id = registry.add(customer_number)
    lift = submitted("restriction", customer_number=customer_number, lift=True)
    team = stores()
    async with (
        participants(*(s.process() for s in team.values())),
        dsar_service(registry, **DATA_MAP) as env,
        TopicReader(DSAR_EVENTS) as events,
        TopicReader(PRIVACY_TASKS) as tasks,
        Producer() as producer,
    ):
        await producer.send(DSAR_REQUESTS, place["request_id"], event("dsar.submitted", place))
        await events.wait_for(for_request(place["request_id"], "dsar.completed"))
        async with env.pool.acquire() as conn:
            restricted = await conn.fetchval("SELECT count(*) FROM restrictions WHERE subject_id = $1", subject_id)
        await producer.send(DSAR_REQUESTS, lift["request_id"], event("dsar.submitted", lift))
        [notice] = await events.wait_for(for_request(lift["request_id"], "dsar.restriction_lift_notice"))
        [done] = await events.wait_for(for_request(lift["request_id"], "dsar.completed"))
        lift_tasks = await tasks.wait_for(for_request(lift["request_id"]), count=4)
        view = await env.request(lift["request_id"])
        async with env.pool.acquire() as conn:
            still = await conn.fetchval("SELECT count(*) FROM restrictions WHERE subject_id = $1", subject_id)

    assert restricted == 1 and still == 0
    assert all(data_of(t)["lift"] is True for t in lift_tasks)
    # Told first: no lift task was even written before the notice had reached Kafka.
    assert min(t.timestamp for t in lift_tasks) >= notice.timestamp
    notice_data = data_of(notice)
    assert set(notice_data) == {"request_id", "kind", "lift_at"}
    result = data_of(done)
    assert result["status"] == "completed" and result["lift_notice_at"] == notice_data["lift_at"]
    assert {r["effects"][0]["action"] for r in result["results"].values()} == {"restriction_lifted"}
    details = [h["detail"] or "" for h in view["history"]]
    told = next(i for i, d in enumerate(details) if "told first" in d)
    sent = next(i for i, d in enumerate(details) if "lift notice out" in d)
    assert told < sent
    assert view["lift"] is True and view["lift_notice_at"] is not None
    assert all(p["effects"][0]["action"] == "restriction_lifted" for p in view["participants"])


async def test_bad_input_is_rejected_at_intake_naming_the_field_and_nothing_is_sent(registry) -> None:
    lift_unrestricted = submitted("restriction", lift=True)
    registry.add(lift_unrestricted["identifiers"]["customer_number"])
    over_kafka = {
        "scope": submitted("objection"),
        "scope ": submitted("objection", scope="everything"),
        "data.corrections.shoe_size": submitted("rectification", corrections={"contact": {}, "shoe_size": {"eu": 44}}),
        "data.corrections.person.personal_identity_code": submitted(
            "rectification", corrections={"person": {"personal_identity_code": "131052-308U"}}
        ),
        "data.corrections.contact.email": submitted("rectification", corrections={"contact": {"email": "ei-osoite"}}),
        "lift": lift_unrestricted,
    }
    over_http = {
        "scope": submitted("objection"),
        "data.corrections.shoe_size": submitted("rectification", corrections={"shoe_size": {"eu": 44}}),
        "data.corrections.hat_size": submitted("rectification", corrections={"contact": {}, "hat_size": 7}),
    }
    for body in [*over_kafka.values(), *over_http.values()]:
        registry.add(body["identifiers"]["customer_number"])
    async with (
        dsar_service(registry, participants=["nobody-answers"]) as env,
        TopicReader(DSAR_EVENTS) as events,
        TopicReader(PRIVACY_TASKS) as tasks,
        Producer() as producer,
        client(env) as http,
    ):
        for body in over_kafka.values():
            await producer.send(DSAR_REQUESTS, body["request_id"], event("dsar.submitted", body))
        answers = {}
        for field, body in over_kafka.items():
            found = await events.wait_for(for_request(body["request_id"], "dsar.rejected"))
            assert len(found) == 1, (field, [data_of(f) for f in found])
            answer = found[0]
            answers[field] = data_of(answer)
        http_answers = {field: await http.post("/v1/requests", json=body) for field, body in over_http.items()}
        for body in over_http.values():
            await events.wait_for(for_request(body["request_id"], "dsar.rejected"))
        views = {
            b["request_id"]: await env.request(b["request_id"]) for b in [*over_kafka.values(), *over_http.values()]
        }
        await asyncio.sleep(1)  # a task, had one been sent, would be on its way by now

    for field, answer in answers.items():
        assert answer["reason"] == "invalid", answer
        assert field.strip() in answer["detail"], (field, answer["detail"])
    for field, response in http_answers.items():
        assert response.status_code == 422 and field in json.dumps(response.json()), response.json()
    assert all(v["status"] == "rejected" for v in views.values())
    everything = json.dumps(answers) + json.dumps([r.json() for r in http_answers.values()])
    assert "131052-308U" not in everything and "ei-osoite" not in everything and "everything" not in everything
    rejected = {b["request_id"].encode() for b in [*over_kafka.values(), *over_http.values()]}
    assert not [t for t in tasks.records if t.key in rejected and ours(t)]
    assert not [r for r in events.records if r.key in rejected and type_of(r) == "dsar.accepted" and ours(r)]


class StandInStore:
    """A store's ``POST /v1/resolve`` over real HTTP: 200 with its customer numbers, 404 unknown,
    401 without the coordinator's credential."""

    def __init__(self, token: str) -> None:
        self.port = free_port()
        self.known: set[str] = set()
        app = FastAPI()

        @app.post("/v1/resolve")
        async def resolve(request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"Bearer {token}":
                return JSONResponse({"error": "unauthorised"}, status_code=401)
            number = (await request.json()).get("customer_number")
            if number in self.known:
                return JSONResponse({"customer_numbers": [number]})
            return JSONResponse({"error": "unknown"}, status_code=404)

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def test_a_customer_only_billing_knows_is_resolved_and_served(registry) -> None:
    body = submitted("access", identifiers={"customer_number": "777000123"})
    nobody = submitted("access", identifiers={"customer_number": "777000999"})
    store = StandInStore(DSAR_TOKEN)  # the coordinator's own credential (LAMPO_API_TOKEN)
    store.known.add("777000123")
    team = stores()
    serving = asyncio.create_task(store.server.serve())
    try:
        await eventually(lambda: store.server.started, timeout=10, interval=0.02)
        async with (
            participants(*(s.process() for s in team.values())),
            dsar_service(registry, store_resolve_urls={BILL: store.url}, **DATA_MAP) as env,
            TopicReader(DSAR_EVENTS) as events,
            Producer() as producer,
        ):
            for b in (body, nobody):
                await producer.send(DSAR_REQUESTS, b["request_id"], event("dsar.submitted", b))
            [done] = await events.wait_for(for_request(body["request_id"], "dsar.completed"))
            [unknown] = await events.wait_for(for_request(nobody["request_id"], "dsar.rejected"))
            view = await env.request(body["request_id"])
    finally:
        store.server.should_exit = True
        await serving

    assert data_of(done)["status"] == "completed"
    assert data_of(unknown)["reason"] == "no_match"
    assert view["subject_id"].startswith("cn-") and "777000123" not in view["subject_id"]
    [task] = [t for t in team[BILL].tasks if t.request_id == body["request_id"]]
    assert task.subject.subject_id == view["subject_id"] and task.subject.customer_numbers == ["777000123"]


__all__ = ["synthetic_identity_code"]
