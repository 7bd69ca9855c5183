"""Authenticity (CONTRACTS.md): a participant obeys only tasks the coordinator signed, and purge
tasks retention signed; anything else is dead-lettered ``unauthenticated`` and changes nothing.
The outbox relay signs exactly the bytes it sends."""

from __future__ import annotations

import base64
import json
from typing import Any

import asyncpg
import pytest

from lampo.contracts.catalog import PRIVACY_ACKS, PRIVACY_TASKS
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyTask
from lampo.crypto import new_master_key
from lampo.db.pool import server_url_of
from lampo.messaging import outbox
from lampo.messaging.topics import dlq
from lampo.participant import Participant, TaskOutcome, subscribe
from lampo.service import Runtime
from lampo.settings import ServiceSettings
from lampo.signing import SIGNATURE, SIGNER, Signer, TrustedKeys, new_key_pair
from lampo.testing import (
    PG_URL,
    Producer,
    TopicReader,
    drop_database,
    fast_forward_group,
    header,
    privacy_task,
    signed_headers,
    signing_settings,
    unique,
)

pytestmark = pytest.mark.integration


def test_a_key_is_rotated_by_trusting_old_and_new_for_a_while() -> None:
    (old_private, old_public), (new_private, new_public) = new_key_pair(), new_key_pair()
    _, stranger = new_key_pair()
    trusted = TrustedKeys({"staff": [old_public, new_public]})
    for private in (old_private, new_private):
        headers = Signer("staff", private).headers(b"value")
        assert headers[SIGNER] == "staff"
        signature = base64.b64decode(headers[SIGNATURE])
        assert trusted.verify("staff", signature, b"value")
        assert not trusted.verify("staff", signature, b"value!")  # the signature covers the value
        assert not trusted.verify("coordinator", signature, b"value")
        assert not TrustedKeys({"staff": [stranger]}).verify("staff", signature, b"value")


async def test_unsigned_forged_or_wrongly_signed_tasks_are_dead_lettered_and_change_nothing() -> None:
    name = unique("probe")
    settings = ServiceSettings(
        database=unique("test_part"), consumer_group=unique("test-part"), master_key=new_master_key(),
        signer=name, **signing_settings(name),
    )  # fmt: skip
    await fast_forward_group(settings.consumer_group or "", [PRIVACY_TASKS])
    obeyed: list[str] = []

    async def handle(conn: Any, task: PrivacyTask) -> TaskOutcome:
        obeyed.append(task.task_id)
        return TaskOutcome(erased={"basic": 1})

    runtime = Runtime(settings, migrations=None)
    consumer = subscribe(runtime, Participant(name, {"erasure": handle, "purge": handle}))
    await runtime.app.start()
    try:
        unsigned, forged, by_retention, by_staff = (privacy_task(name, "erasure", "c-1") for _ in range(4))
        purge = privacy_task(name, "purge", "c-1")

        def task(t: PrivacyTask) -> CloudEvent:
            return CloudEvent.new("privacy.task", "urn:lampo:dsar", t)

        async with (
            TopicReader(dlq(PRIVACY_TASKS)) as dead,
            TopicReader(PRIVACY_ACKS) as acks,
            Producer() as producer,
        ):
            await producer.send(PRIVACY_TASKS, unsigned.request_id, task(unsigned))
            forged_event = task(forged)  # the coordinator's name, signed with another key
            headers = signed_headers(forged_event.to_bytes(), "coordinator", key_of=name)
            await producer.send(PRIVACY_TASKS, forged.request_id, forged_event, headers=headers)
            # retention's own key: accepted for purge only
            await producer.send(PRIVACY_TASKS, by_retention.request_id, task(by_retention), signer="retention")
            await producer.send(PRIVACY_TASKS, by_staff.request_id, task(by_staff), signer="staff")
            await producer.send(PRIVACY_TASKS, purge.request_id, task(purge), signer="retention")
            refused = await dead.wait_for(lambda r: json.loads(r.value)["data"]["participant"] == name, count=4)
            [ack] = await acks.wait_for(lambda r: json.loads(r.value)["data"]["task_id"] == purge.task_id)

        by_task = {json.loads(r.value)["data"]["task_id"]: r for r in refused}
        assert set(by_task) == {unsigned.task_id, forged.task_id, by_retention.task_id, by_staff.task_id}
        assert {header(r, "error.reason") for r in refused} == {"unauthenticated"}
        assert "no signature" in (header(by_task[unsigned.task_id], "error.detail") or "")
        assert "does not verify" in (header(by_task[forged.task_id], "error.detail") or "")
        assert "'erasure' task must be signed by the coordinator, not 'retention'" in (
            header(by_task[by_retention.task_id], "error.detail") or ""
        )
        assert obeyed == [purge.task_id]  # the purge task retention signed, nothing else
        assert json.loads(ack.value)["data"]["status"] == "done"
        assert header(ack, SIGNER) == name  # the participant's ack is signed by its own key
        assert consumer.stats.dead_lettered == {"unauthenticated": 4}

        conn = await asyncpg.connect(server_url_of(PG_URL, settings.database))
        try:
            tasks = {r["task_id"] for r in await conn.fetch("SELECT task_id FROM privacy_tasks")}
            handled = await conn.fetchval("SELECT count(*) FROM inbox")
        finally:
            await conn.close()
        assert tasks == {purge.task_id} and handled == 1  # refused tasks left no row, not even in the inbox
    finally:
        await runtime.app.stop()
        await drop_database(settings.database or "")


async def test_a_participant_without_trusted_keys_obeys_no_task(caplog: pytest.LogCaptureFixture) -> None:
    name = unique("probe")
    settings = ServiceSettings(
        database=unique("test_part"), consumer_group=unique("test-part"), master_key=new_master_key()
    )
    await fast_forward_group(settings.consumer_group or "", [PRIVACY_TASKS])
    runtime = Runtime(settings, migrations=None)
    with caplog.at_level("ERROR", logger="lampo.participant"):
        subscribe(runtime, Participant(name, {"erasure": lambda conn, task: TaskOutcome()}))  # type: ignore[arg-type,return-value]
    assert "obeys no privacy task" in caplog.text
    await runtime.app.start()
    try:
        t = privacy_task(name, "erasure", "c-1")
        async with TopicReader(dlq(PRIVACY_TASKS)) as dead, Producer() as producer:
            await producer.send(
                PRIVACY_TASKS, t.request_id, CloudEvent.new("privacy.task", "urn:lampo:dsar", t), signer="coordinator"
            )
            [record] = await dead.wait_for(lambda r: json.loads(r.value)["data"]["task_id"] == t.task_id)
        assert header(record, "error.reason") == "unauthenticated"
        assert header(record, "error.detail") == "no trusted key for signer 'coordinator'"
    finally:
        await runtime.app.stop()
        await drop_database(settings.database or "")


async def test_the_relay_signs_exactly_the_bytes_it_sends_on_signed_topics_only() -> None:
    settings = ServiceSettings(
        database=unique("test_relay"), consumer_group=unique("test-relay"), master_key=new_master_key(),
        signer="coordinator", **signing_settings("coordinator"),
    )  # fmt: skip
    runtime = Runtime(settings, migrations=None)
    await runtime.app.start()
    try:
        t = privacy_task("someone", "erasure", "c-1")
        task = CloudEvent.new("privacy.task", "urn:lampo:dsar", t)
        notice = CloudEvent.new("dsar.overdue", "urn:lampo:dsar", {"request_id": t.request_id, "due_at": "x"})
        async with TopicReader(PRIVACY_TASKS, "dsar.events.v1") as reader:
            async with runtime.pool.acquire() as conn, conn.transaction():
                await outbox.add(
                    conn,
                    [outbox.OutgoingEvent(PRIVACY_TASKS, t.request_id, task),
                     outbox.OutgoingEvent("dsar.events.v1", t.request_id, notice)],
                )  # fmt: skip
            [sent] = await reader.wait_for(lambda r: r.topic == PRIVACY_TASKS and r.key == t.request_id.encode())
            [other] = await reader.wait_for(lambda r: r.topic == "dsar.events.v1" and r.key == t.request_id.encode())
        assert header(sent, SIGNER) == "coordinator"
        signature = base64.b64decode(header(sent, SIGNATURE) or "")
        assert TrustedKeys(settings.trusted_keys).verify("coordinator", signature, sent.value)
        assert header(other, SIGNATURE) is None  # not a task, ack or approval: unsigned
    finally:
        await runtime.app.stop()
        await drop_database(settings.database or "")
