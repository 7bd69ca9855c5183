"""Consumers of the coordinator: requests and approvals (dsar.requests.v1), participants' acks
(privacy.acks.v1), and the legal holds retention publishes (retention.holds.v1)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from typing import Any

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import Topic
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.metrics import CallbackOptions, Observation
from pydantic import ValidationError

from lampo.contracts.dsar import DsarApproved, DsarDenied, DsarSubmitted
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.errors import REASONS, ContractViolation
from lampo.contracts.privacy import PrivacyAck
from lampo.dsar.coordinator import Coordinator
from lampo.dsar.domain import HoldState
from lampo.dsar.store import DsarStore
from lampo.messaging import inbox
from lampo.messaging.consumer import INFRASTRUCTURE_ERRORS, BatchHandler, Incoming, ReliableConsumer, per_event
from lampo.messaging.topics import consumer_group_for
from lampo.service import Runtime
from lampo.signing import SignaturePolicy, only
from lampo.tracing import TRACEPARENT, carrier_of, context_from_headers

log = logging.getLogger("lampo.dsar")

RETENTION_HOLDS = "retention.holds.v1"
_IDENTIFIER = re.compile(r"[!-~]{1,128}")


def requests_handler(coordinator: Coordinator) -> BatchHandler:
    async def handle(conn: Any, item: Incoming) -> None:
        data = item.event.data
        source = item.event.envelope.source
        if isinstance(data, DsarSubmitted):
            item.span.set_attribute("lampo.request_id", data.request_id)
            await coordinator.submit(
                conn, data, actor=source, traceparent=item.traceparent, raw=item.event.envelope.data
            )
        elif isinstance(data, DsarApproved):
            item.span.set_attribute("lampo.request_id", data.request_id)
            await coordinator.approve(conn, data.request_id, by=data.approved_by, at=data.approved_at)
        elif isinstance(data, DsarDenied):
            item.span.set_attribute("lampo.request_id", data.request_id)
            await coordinator.deny(conn, data.request_id, by=data.denied_by, reason=data.reason)

    return per_event(handle)


def acks_handler(coordinator: Coordinator) -> BatchHandler:
    """The batch of acks applied together (Coordinator.on_acks: a few round trips per request)."""

    async def handle(conn: Any, items: list[Incoming]) -> None:
        acks: list[tuple[PrivacyAck, str]] = []
        for item in items:
            ack = item.event.data
            assert isinstance(ack, PrivacyAck)
            item.span.set_attribute("lampo.request_id", ack.request_id)
            item.span.set_attribute("lampo.task_id", ack.task_id)
            item.span.set_attribute("lampo.participant", ack.participant)
            acks.append((ack, item.id))
        outcomes = await coordinator.on_acks(conn, acks)
        for item, outcome in zip(items, outcomes, strict=True):
            item.span.set_attribute("lampo.ack.outcome", outcome)

    return handle


class RequestsConsumer(ReliableConsumer):
    """The reliable consumer of dsar.requests.v1, which also *answers* a dsar.submitted that
    breaks the contract (unknown kind, no or malformed identifiers) with dsar.rejected
    (``invalid``) whenever its request_id can be read. The record still goes to the DLQ with
    its reason, as for any topic; the answer is written after the DLQ copy and before the
    offset is committed, so a crash between the two repeats both (the answer once: inbox)."""

    def __init__(self, *, coordinator: Coordinator, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._coordinator = coordinator

    async def _dead_letter(self, record: ConsumerRecord[Any, Any], reason: str, detail: str) -> None:
        await super()._dead_letter(record, reason, detail)
        if reason in REASONS:
            await self._answer_invalid(record, reason, detail)

    async def _answer_invalid(self, record: ConsumerRecord[Any, Any], reason: str, detail: str) -> None:
        try:
            envelope = CloudEvent.from_bytes(record.value or b"")
        except ContractViolation:
            return  # not even an envelope: nobody to answer
        request_id = envelope.data.get("request_id")
        if (
            envelope.type != "dsar.submitted"
            or not isinstance(request_id, str)
            or not _IDENTIFIER.fullmatch(request_id)
        ):
            return
        kind = envelope.data.get("kind")
        channel = envelope.data.get("channel")
        traceparent = carrier_of(context_from_headers(record.headers)).get(TRACEPARENT)
        async with self._pool().acquire() as conn, conn.transaction():
            if not await inbox.claim(conn, f"{self.name}:invalid", [envelope.id]):
                return
            await self._coordinator.reject_invalid(
                conn,
                request_id=request_id,
                kind=kind if isinstance(kind, str) else "unknown",
                reason=reason,
                detail=detail,
                channel=channel if isinstance(channel, str) and _IDENTIFIER.fullmatch(channel) else "kafka",
                actor=envelope.source if _IDENTIFIER.fullmatch(envelope.source) else "kafka",
                traceparent=traceparent,
                raw=envelope.data,
            )


def consume_requests(runtime: Runtime, coordinator: Coordinator) -> RequestsConsumer:
    consumer = RequestsConsumer(
        coordinator=coordinator,
        name=f"{runtime.name}:dsar.requests.v1",
        topic="dsar.requests.v1",
        group_id=consumer_group_for(runtime.settings.consumer_group or f"lampo-{runtime.name}", "dsar.requests.v1"),
        pool=lambda: runtime.pool,
        handler=requests_handler(coordinator),
        broker=runtime.broker,
        tracer=runtime.tracer,
        # An approval or denial counts only when the staff service signed it (CONTRACTS.md).
        verify=SignaturePolicy(
            runtime.trusted, only("staff"), applies=lambda e: isinstance(e.data, DsarApproved | DsarDenied)
        ),
    )
    runtime.adopt(consumer)  # on /metrics and in /health/ready like every other consumer
    return consumer


class HoldsConsumer:
    """Keeps the legal_holds table equal to retention.holds.v1 (compacted: the latest record per
    customer number is the whole truth, so applying it again is harmless). A record that is not
    a legal_hold.state is skipped and counted: the topic is internal, written by retention."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.applied = 0
        self.skipped = 0

    def register(self) -> None:
        group = consumer_group_for(
            self._runtime.settings.consumer_group or f"lampo-{self._runtime.name}", RETENTION_HOLDS
        )
        subscriber = self._runtime.broker.subscriber(
            Topic(RETENTION_HOLDS, declare=False),
            group_id=group,
            batch=True,
            max_records=500,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,
            title=f"{self._runtime.name}:{RETENTION_HOLDS}",
        )

        async def on_batch(msg: KafkaMessage) -> None:
            await self.consume(msg)

        subscriber(on_batch)

        def counts(_: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(self.applied, {"outcome": "applied"}),
                Observation(self.skipped, {"outcome": "skipped"}),
            ]

        self._runtime.meter.create_observable_counter(
            "lampo.dsar.holds.records",
            [counts],
            unit="{record}",
            description="retention.holds.v1 records applied to the coordinator's copy of the legal holds, or skipped",
        )

    async def consume(self, msg: KafkaMessage) -> None:
        records: tuple[ConsumerRecord[Any, Any], ...] = msg.raw_message
        try:
            async with self._runtime.pool.acquire() as conn, conn.transaction():
                store = DsarStore(conn)
                for record in records:
                    await self._apply(store, record)
        except INFRASTRUCTURE_ERRORS as e:
            log.warning("dsar holds: batch rewound after %s", type(e).__name__)
            await msg.nack()
            await asyncio.sleep(1.0)
            return
        await msg.ack()

    async def _apply(self, store: DsarStore, record: ConsumerRecord[Any, Any]) -> None:
        """The key is the customer number (compaction keeps the latest record per key): a record
        whose key is unreadable, or is not the customer number its state names, is skipped, as
        applying it could let an older state win over a newer one on a later replay."""
        try:
            key = record.key.decode() if isinstance(record.key, bytes) else record.key
            if record.value is None:  # tombstone: no holds any more
                if key:
                    await store.set_holds(key, [])
                self.applied += 1
                return
            envelope = CloudEvent.from_bytes(record.value)
            if envelope.type != "legal_hold.state":
                raise ValueError("type")
            state = HoldState.model_validate(envelope.data)
            if key != state.customer_number:
                raise ValueError("key is not the state's customer number")
        except (ContractViolation, ValidationError, ValueError) as e:  # UnicodeDecodeError is a ValueError
            self.skipped += 1
            log.warning("dsar holds: record %d@%d skipped: %s", record.partition, record.offset, type(e).__name__)
            return
        await store.set_holds(state.customer_number, [h.model_dump(mode="json") for h in state.holds])
        self.applied += 1
