"""The audit chain's head outside the database: published to the compacted topic
``staff.audit-heads.v1`` (key ``audit_head_key``, a constant, no personal data) and read back by
``audit verify``. A cut tail or a recomputed chain no longer matches the last head published."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from lampo.contracts.envelope import CloudEvent
from lampo.messaging.topics import STAFF_AUDIT_HEADS
from lampo.staff.domain import AuditHead
from lampo.staff.settings import StaffSettings

HEAD_TYPE = "staff.audit_head"
SOURCE = "urn:lampo:staff"

Send = Callable[[str, str, bytes, dict[str, str]], Awaitable[None]]


def head_record(head: AuditHead) -> bytes:
    return CloudEvent.new(HEAD_TYPE, SOURCE, head.to_json(), time=head.at).model_dump_json().encode()


async def publish(send: Send, settings: StaffSettings, head: AuditHead) -> None:
    await send(STAFF_AUDIT_HEADS, settings.audit_head_key, head_record(head), {"content-type": "application/json"})


async def publish_once(settings: StaffSettings, head: AuditHead) -> None:
    """Publish with a producer of its own (the CLI, which has no outbox relay)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", **settings.kafka_client_options()
    )
    await producer.start()
    try:

        async def send(topic: str, key: str, value: bytes, headers: dict[str, str]) -> None:
            await producer.send_and_wait(
                topic, value, key=key.encode(), headers=[(k, v.encode()) for k, v in headers.items()]
            )

        await publish(send, settings, head)
    finally:
        await producer.stop()


async def last_head(settings: StaffSettings, key: bytes, *, timeout_s: float = 10.0) -> AuditHead | None:
    """The furthest head published under ``audit_head_key`` with a valid MAC (two publishers may
    race; a forged one does not count), else the last one seen (verify then names it invalid);
    None when none was ever published. The topic is read from its start to its end (compacted:
    about one record per chain), without a consumer group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, **settings.kafka_client_options()
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(STAFF_AUDIT_HEADS, 0)]  # declared with one partition
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        best: AuditHead | None = None
        last: AuditHead | None = None
        want = settings.audit_head_key.encode()
        (partition,) = partitions
        while await consumer.position(partition) < ends[partition]:
            batches = await consumer.getmany(*partitions, timeout_ms=int(timeout_s * 1000))
            if not batches:
                raise TimeoutError(f"{STAFF_AUDIT_HEADS}: no records within {timeout_s} s before its end")
            for records in batches.values():
                for record in records:
                    if record.key == want and record.value is not None:
                        last = AuditHead.from_json(json.loads(record.value)["data"])
                        if last.valid(key, settings.audit_head_key) and (best is None or last.seq >= best.seq):
                            best = last
        return best or last
    finally:
        await consumer.stop()
