"""The participant side of the privacy protocol on the real broker and database: tasks addressed
to another participant are passed over before parsing and the inbox; its own are handled."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from lampo.contracts.catalog import PRIVACY_TASKS
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyTask
from lampo.crypto import new_master_key
from lampo.db.pool import server_url_of
from lampo.participant import Participant, TaskOutcome, subscribe
from lampo.service import Runtime
from lampo.settings import ServiceSettings
from lampo.testing import (
    PG_URL,
    Producer,
    drop_database,
    fast_forward_group,
    privacy_task,
    run_privacy_task,
    signing_settings,
    unique,
)

pytestmark = pytest.mark.integration


async def erase(conn: Any, task: PrivacyTask) -> TaskOutcome:
    return TaskOutcome(erased={"basic": 1})


async def test_tasks_for_other_participants_are_passed_over_before_the_inbox() -> None:
    name = unique("probe")
    settings = ServiceSettings(
        database=unique("test_part"), consumer_group=unique("test-part"), master_key=new_master_key(),
        signer=name, **signing_settings(name),
    )  # fmt: skip
    await fast_forward_group(settings.consumer_group or "", [PRIVACY_TASKS])
    runtime = Runtime(settings, migrations=None)
    consumer = subscribe(runtime, Participant(name, {"erasure": erase}))
    await runtime.app.start()
    try:
        foreign = privacy_task(unique("someone-else"), "erasure", "c-1")
        other = CloudEvent.new("privacy.task", "urn:lampo:dsar", foreign)
        async with Producer() as producer:
            await producer.send(PRIVACY_TASKS, foreign.request_id, other, signer="coordinator")
        [ack] = await run_privacy_task(privacy_task(name, "erasure", "c-1"))  # after the other one, same topic
        assert ack["status"] == "done" and ack["erased"] == {"basic": 1}

        conn = await asyncpg.connect(server_url_of(PG_URL, settings.database))
        try:
            handled = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM inbox")}
        finally:
            await conn.close()
        assert other.id not in handled  # not stored, not even as handled
        assert len(handled) == 1  # only its own task
        assert consumer.stats.passed_over >= 1 and consumer.stats.processed == 1
    finally:
        await runtime.app.stop()
        await drop_database(settings.database)


def test_only_a_plainly_foreign_task_is_passed_over() -> None:
    from aiokafka.structs import ConsumerRecord

    participant = Participant("registry", {})

    def record(value: bytes) -> ConsumerRecord[Any, Any]:
        return ConsumerRecord(PRIVACY_TASKS, 0, 0, 0, 0, None, value, None, 0, len(value), ())

    assert not participant.addressed_here(record(b'{"data": {"participant": "billing"}}'))
    assert participant.addressed_here(record(b'{"data": {"participant": "registry"}}'))
    # anything else goes the whole way, to be handled or dead-lettered with its reason
    for odd in (b"not json", b"\xff\xfe", b"[]", b'{"data": 1}', b'{"data": {"participant": 7}}', b"[" * 100_000):
        assert participant.addressed_here(record(odd))
