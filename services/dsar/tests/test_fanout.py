"""Fan-out and aggregation: timeouts, retries with the same task_id, a final failure naming the
participant, an operator's retry of one participant, acks for unknown tasks and late acks."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from dsar_support import ParticipantProcess, data_of, dsar_service, event, for_request, ours, participants, submitted

from lampo.contracts.catalog import DSAR_EVENTS, DSAR_REQUESTS, PRIVACY_ACKS, PRIVACY_TASKS
from lampo.contracts.dsar import DsarSubmitted
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyAck, PrivacyTask
from lampo.messaging.topics import dlq
from lampo.participant import TaskFailed, TaskOutcome
from lampo.testing import Producer, TopicReader, eventually, header, metric_sample, signed_headers, trusted_keys_for

TIMEOUT = timedelta(seconds=121)  # past the default 120 s wait of a first attempt


class Recorder:
    """Handlers of a participant that note every task they actually ran."""

    def __init__(self, *, fail_with: str | None = None) -> None:
        self.ran: list[tuple[str, int]] = []
        self.requests: list[str] = []
        self.fail_with = fail_with

    async def handle(self, conn: Any, task: PrivacyTask) -> TaskOutcome:
        self.ran.append((task.task_id, task.attempt))
        self.requests.append(task.request_id)
        if self.fail_with:
            raise TaskFailed(self.fail_with)
        return TaskOutcome(erased={"contact": 1})

    def handlers(self) -> dict[str, Any]:
        return {"restriction": self.handle, "erasure": self.handle}


async def answered(env: Any, rid: str, participant: str) -> None:
    """Wait until the coordinator has applied ``participant``'s answer."""

    async def check() -> bool:
        view = await env.request(rid)
        return any(p["participant"] == participant and p["status"] != "open" for p in view["participants"])

    await eventually(check)


def tasks_for(records: list[Any], request_id: str, participant: str) -> list[dict[str, Any]]:
    return [
        data_of(r)
        for r in records
        if r.key == request_id.encode() and ours(r) and data_of(r)["participant"] == participant
    ]


async def test_a_silent_participant_gets_the_same_task_again_and_its_answer_after_restart_completes_the_request(
    registry,
) -> None:
    body = submitted("restriction")
    registry.add(body["identifiers"]["customer_number"])
    rid = body["request_id"]
    steady, sleepy = Recorder(), Recorder()
    sleeper = ParticipantProcess("t-sleepy", sleepy.handlers())
    async with (
        participants(ParticipantProcess("t-steady", steady.handlers()), sleeper),
        dsar_service(registry, participants=["t-steady", "t-sleepy"]) as env,
        TopicReader(DSAR_EVENTS) as events,
        TopicReader(PRIVACY_TASKS) as tasks,
        Producer() as producer,
    ):
        await sleeper.stop()  # down before the request arrives
        await producer.send(DSAR_REQUESTS, rid, event("dsar.submitted", body))
        await events.wait_for(for_request(rid, "dsar.accepted"))
        await answered(env, rid, "t-steady")
        env.clock.advance(TIMEOUT)
        await env.coordinator.tick()
        await tasks.wait_for(lambda r: r.key == rid.encode() and data_of(r)["attempt"] == 2)
        await sleeper.start()  # back: it reads attempt 1 and attempt 2 of the same task
        [completed] = await events.wait_for(for_request(rid, "dsar.completed"))
        sent = tasks_for(tasks.records, rid, "t-sleepy")
        async with env.pool.acquire() as conn:
            ignored = await eventually(lambda: conn.fetch("SELECT * FROM ignored_acks WHERE request_id = $1", rid))
        view = await env.request(rid)

    assert [t["attempt"] for t in sent] == [1, 2]
    assert len({t["task_id"] for t in sent}) == 1  # the same task_id on retry
    assert len(steady.ran) == 1, (steady.requests, rid)  # the answering participant was asked once
    assert len(sleepy.ran) == 1  # the repeated task was answered from the stored ack
    assert data_of(completed)["status"] == "completed"
    # the answer to attempt 1 arrived while the task was still open: accepted; the second
    # answer (to attempt 2) found it final: ignored and recorded
    assert ignored[0]["participant"] == "t-sleepy" and ignored[0]["task_status"] == "done"
    assert any("sent attempt 2" in (h["detail"] or "") for h in view["history"])


async def test_no_answer_after_the_last_attempt_fails_the_request_naming_the_participant_and_a_later_ack_is_ignored(
    registry,
) -> None:
    body = submitted("restriction")
    registry.add(body["identifiers"]["customer_number"])
    rid = body["request_id"]
    steady = Recorder()
    async with (
        participants(ParticipantProcess("t-steady", steady.handlers())),
        dsar_service(registry, participants=["t-steady", "t-gone"], task_max_attempts=2) as env,
        TopicReader(DSAR_EVENTS) as events,
        TopicReader(PRIVACY_TASKS) as tasks,
        Producer() as producer,
    ):
        await producer.send(DSAR_REQUESTS, rid, event("dsar.submitted", body))
        await events.wait_for(for_request(rid, "dsar.accepted"))
        await answered(env, rid, "t-steady")
        env.clock.advance(TIMEOUT)
        await env.coordinator.tick()  # attempt 2, waiting twice as long
        env.clock.advance(TIMEOUT * 2)
        await env.coordinator.tick()  # no attempt 3: failed
        [completed] = await events.wait_for(for_request(rid, "dsar.completed"))
        await tasks.wait_for(lambda r: r.key == rid.encode() and data_of(r)["participant"] == "t-gone", count=2)
        [task] = [t for t in tasks_for(tasks.records, rid, "t-gone") if t["attempt"] == 1]
        late = PrivacyAck(request_id=rid, task_id=task["task_id"], participant="t-gone", status="done")
        await producer.send(PRIVACY_ACKS, rid, CloudEvent.new("privacy.ack", "urn:lampo:t-gone", late), signer="t-gone")
        async with env.pool.acquire() as conn:
            [ignored] = await eventually(
                lambda: conn.fetch("SELECT * FROM ignored_acks WHERE request_id = $1 AND participant = 't-gone'", rid)
            )
            status = await conn.fetchval("SELECT status FROM requests WHERE request_id = $1", rid)

    done = data_of(completed)
    assert done["status"] == "failed"
    assert done["results"]["t-gone"] == {
        "status": "failed", "erased": {}, "retained": [], "error": "t-gone: no answer after 2 attempts", "effects": [],
    }  # fmt: skip
    assert done["results"]["t-steady"]["status"] == "done"
    assert ignored["task_status"] == "failed" and ignored["ack_status"] == "done"
    assert status == "failed"  # the late answer changed nothing


async def test_a_failed_participant_is_named_and_an_operator_retries_it_without_redoing_the_others(registry) -> None:
    body = submitted("restriction")
    registry.add(body["identifiers"]["customer_number"])
    rid = body["request_id"]
    steady, broken = Recorder(), Recorder(fail_with="ledger offline")
    async with (
        participants(
            ParticipantProcess("t-steady", steady.handlers()), ParticipantProcess("t-broken", broken.handlers())
        ),
        dsar_service(registry, participants=["t-steady", "t-broken"]) as env,
        TopicReader(DSAR_EVENTS) as events,
        Producer() as producer,
    ):
        await producer.send(DSAR_REQUESTS, rid, event("dsar.submitted", body))
        [failed] = await events.wait_for(for_request(rid, "dsar.completed"))
        on_failure = await env.dsar.runtime.metrics.render()
        broken.fail_with = None  # the operator fixed the participant
        async with env.pool.acquire() as conn, conn.transaction():
            new_task = await env.coordinator.retry(conn, rid, "t-broken", by="operator:maija")
        [_, completed] = await events.wait_for(for_request(rid, "dsar.completed"), count=2)
        view = await env.request(rid)
        after = await env.dsar.runtime.metrics.render()

    assert data_of(failed)["status"] == "failed"
    assert data_of(failed)["results"]["t-broken"]["error"] == "ledger offline"
    # what the alert rules read (deploy/prometheus/rules.yml): the participant failing, the
    # deadline still running for the failed request, and each completion in the duration histogram
    assert metric_sample(on_failure, "lampo_dsar_tasks_failed", participant="t-broken") == 1
    assert metric_sample(on_failure, "lampo_dsar_tasks_failed", participant="t-steady") == 0
    assert (
        25 * 86_400
        < (metric_sample(on_failure, "lampo_dsar_next_deadline_seconds", kind="restriction") or 0)
        <= 31 * 86_400
    )
    assert metric_sample(on_failure, "lampo_dsar_duration_seconds_count", kind="restriction", status="failed") == 1
    assert metric_sample(after, "lampo_dsar_duration_seconds_count", kind="restriction", status="completed") == 1
    assert metric_sample(after, "lampo_dsar_next_deadline_seconds", kind="restriction") is None  # answered
    assert data_of(completed)["status"] == "completed"
    assert len(steady.ran) == 1  # not redone
    assert [a for _, a in broken.ran] == [1, 2] and broken.ran[1][0] == new_task
    steps = [(h["from_status"], h["to_status"], h["actor"]) for h in view["history"]]
    assert ("failed", "in_progress", "operator:maija") in steps
    assert [p["status"] for p in view["participants"] if p["participant"] == "t-broken"] == ["superseded", "done"]


async def test_an_ack_for_an_unknown_task_is_dead_lettered_and_one_for_another_senders_request_skipped(
    registry,
) -> None:
    body = submitted("restriction")
    registry.add(body["identifiers"]["customer_number"])
    rid = body["request_id"]
    async with (
        dsar_service(registry, participants=["nobody-answers"], trusted_keys=trusted_keys_for("t-x")) as env,
        TopicReader(DSAR_EVENTS) as events,
        TopicReader(dlq(PRIVACY_ACKS)) as dead,
        Producer() as producer,
    ):
        await producer.send(DSAR_REQUESTS, rid, event("dsar.submitted", body))
        await events.wait_for(for_request(rid, "dsar.accepted"))
        unknown = PrivacyAck(request_id=rid, task_id="task-nobody", participant="t-x", status="done")
        foreign = PrivacyAck(request_id="sweep-elsewhere", task_id="task-elsewhere", participant="t-x", status="done")
        foreign_ack = CloudEvent.new("privacy.ack", "urn:lampo:t-x", foreign)
        await producer.send(PRIVACY_ACKS, "sweep-elsewhere", foreign_ack, signer="t-x")
        await producer.send(PRIVACY_ACKS, rid, CloudEvent.new("privacy.ack", "urn:lampo:t-x", unknown), signer="t-x")
        [record] = await dead.wait_for(lambda r: r.key == rid.encode())
        await dead.quiet(1.0)
        stats = env.dsar.acks.stats
    assert header(record, "error.reason") == "unknown_task"
    assert "task_id" in (header(record, "error.detail") or "")
    assert json.loads(record.value)["data"]["task_id"] == "task-nobody"
    assert not [r for r in dead.records if r.key == b"sweep-elsewhere"]
    assert stats.dead_lettered.get("unknown_task", 0) >= 1


async def test_a_batch_of_acks_completes_its_request_once_and_sorts_late_and_foreign_answers(registry) -> None:
    """Coordinator.on_acks applies a whole batch in one transaction: every participant's answer
    to one request (the request completes once), a repeated answer to a task the batch already
    finished (recorded as ignored), and another sender's answer (skipped)."""
    body = submitted("restriction")
    registry.add(body["identifiers"]["customer_number"])
    rid = body["request_id"]
    async with dsar_service(registry, run_checker=False, participants=["p-one", "p-two"]) as env:
        async with env.pool.acquire() as conn, conn.transaction():
            await env.coordinator.submit(conn, DsarSubmitted.model_validate(body), actor="test", traceparent=None)
        await env.coordinator.tick()  # resolved and accepted: one open task per participant
        async with env.pool.acquire() as conn:
            tasks = await conn.fetch(
                "SELECT task_id, participant FROM tasks WHERE request_id = $1 ORDER BY participant", rid
            )
        acks = [
            PrivacyAck(
                request_id=rid, task_id=t["task_id"], participant=t["participant"], status="done", erased={"contact": 1}
            )
            for t in tasks
        ]
        foreign = PrivacyAck(request_id="sweep-elsewhere", task_id="t-elsewhere", participant="p-one", status="done")
        batch = [(acks[0], "e1"), (foreign, "e2"), (acks[1], "e3"), (acks[0], "e4")]
        async with env.pool.acquire() as conn, conn.transaction():
            outcomes = await env.coordinator.on_acks(conn, batch)
        async with env.pool.acquire() as conn:
            completions = await conn.fetchval(
                "SELECT count(*) FROM transitions WHERE request_id = $1 AND to_status = 'completed'", rid
            )
            ignored = await conn.fetch("SELECT event_id, task_status FROM ignored_acks WHERE request_id = $1", rid)
        view = await env.request(rid)

    assert [t["participant"] for t in tasks] == ["p-one", "p-two"]
    assert outcomes == ["applied", "not_ours", "applied", "ignored"]
    assert view["status"] == "completed" and completions == 1
    assert [(r["event_id"], r["task_status"]) for r in ignored] == [("e4", "done")]


async def test_a_forged_or_unsigned_ack_is_dead_lettered_and_counts_for_nothing(registry) -> None:
    """CONTRACTS.md "Authenticity": the coordinator counts an ack only when it is signed by the
    participant it names. An unsigned ack, one signed by another participant, and one under the
    participant's name with another key are dead-lettered ``unauthenticated``; the task stays
    open. The participant's own signed answer then completes the request."""
    body = submitted("restriction")
    registry.add(body["identifiers"]["customer_number"])
    rid = body["request_id"]
    async with (
        dsar_service(registry, participants=["t-mute", "t-other"]) as env,
        TopicReader(DSAR_EVENTS) as events,
        TopicReader(PRIVACY_TASKS) as tasks,
        TopicReader(dlq(PRIVACY_ACKS)) as dead,
        Producer() as producer,
    ):
        await producer.send(DSAR_REQUESTS, rid, event("dsar.submitted", body))
        await tasks.wait_for(lambda r: r.key == rid.encode(), count=2)
        [mute] = tasks_for(tasks.records, rid, "t-mute")
        [other] = tasks_for(tasks.records, rid, "t-other")

        def ack(task: dict[str, Any]) -> CloudEvent:
            done = PrivacyAck(
                request_id=rid, task_id=task["task_id"], participant=task["participant"], status="done",
                erased={"contact": 5},
            )  # fmt: skip
            return CloudEvent.new("privacy.ack", f"urn:lampo:{task['participant']}", done)

        forged = ack(mute)
        await producer.send(PRIVACY_ACKS, rid, ack(mute))  # unsigned
        await producer.send(PRIVACY_ACKS, rid, ack(mute), signer="t-other")  # another participant's key
        await producer.send(
            PRIVACY_ACKS, rid, forged, headers=signed_headers(forged.to_bytes(), "t-mute", key_of="t-other")
        )  # the participant's name, another key
        await producer.send(PRIVACY_ACKS, rid, ack(mute), signer="coordinator")  # not a participant at all
        refused = await dead.wait_for(lambda r: r.key == rid.encode(), count=4)
        await producer.send(PRIVACY_ACKS, rid, ack(other), signer="t-other")
        await answered(env, rid, "t-other")
        view = await env.request(rid)
        await events.quiet(1.0)
        assert not [r for r in events.records if for_request(rid, "dsar.completed")(r)]

        await producer.send(PRIVACY_ACKS, rid, ack(mute), signer="t-mute")  # the real answer
        [completed] = await events.wait_for(for_request(rid, "dsar.completed"))

    assert [header(r, "error.reason") for r in refused] == ["unauthenticated"] * 4
    details = [header(r, "error.detail") or "" for r in refused]
    assert "no signature" in details[0]
    assert "signed by the participant it names, not 't-other'" in details[1]
    assert "does not verify" in details[2] and "not 'coordinator'" in details[3]
    states = {p["participant"]: p["status"] for p in view["participants"]}
    assert states["t-mute"] == "open"  # none of the forged acks counted
    assert data_of(completed)["status"] == "completed"
    assert data_of(completed)["results"]["t-mute"]["erased"] == {"contact": 5}
