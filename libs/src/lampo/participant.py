"""The participant side of the privacy protocol (CONTRACTS.md: privacy.tasks.v1 → privacy.acks.v1),
written once for every store: registry, billing, recordings, consent, and any other system.

A service provides one ``TaskHandler`` per task kind it supports. This module:
- ignores tasks addressed to other participants;
- answers a repeated task (same ``task_id``, any attempt) with the answer it gave the first
  time, without doing the work again;
- seals an access result to the request's public key (``result_key``), so personal data crosses
  Kafka only encrypted for that request;
- writes the ack through the outbox in the same transaction as the task's effect, so the effect
  and its answer commit together or not at all;
- answers ``failed`` with the error (never personal data) when the handler raises ``TaskFailed``;
  other errors are retried by the reliable consumer and, failing that, the coordinator's timeout
  and retry take over.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka.structs import ConsumerRecord

from lampo.contracts.catalog import PRIVACY_ACKS, PRIVACY_TASKS
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyAck, PrivacyTask, Retained
from lampo.crypto import seal
from lampo.messaging import outbox
from lampo.messaging.consumer import Incoming, per_event


class TaskFailed(Exception):
    """The task cannot be done; ``error`` is sent to the coordinator (no personal data)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass
class TaskOutcome:
    erased: dict[str, int] = field(default_factory=dict)
    retained: list[Retained] = field(default_factory=list)
    # For access: the subject's data as JSON-able structure; sealed before it leaves.
    result: Any = None


TaskHandler = Callable[[asyncpg.Connection, PrivacyTask], Awaitable[TaskOutcome]]


class Participant:
    def __init__(self, name: str, handlers: Mapping[str, TaskHandler], *, source: str | None = None) -> None:
        self.name = name
        self.handlers = dict(handlers)
        self.source = source or f"urn:lampo:{name}"

    def handler(self) -> Callable[[asyncpg.Connection, list[Incoming]], Awaitable[None]]:
        return per_event(self._handle)

    def addressed_here(self, record: ConsumerRecord[Any, Any]) -> bool:
        """Every participant reads every task; one plainly addressed to another participant is
        passed over before parsing, tracing and the inbox (a sweep's 100,000 purge tasks would
        otherwise cost each participant a validation and an inbox row apiece). Anything not
        plainly another's (not JSON, no participant) goes the whole way, to be handled or
        dead-lettered with its reason."""
        try:
            body = json.loads(record.value or b"")
            participant = body["data"]["participant"]
        except (ValueError, TypeError, KeyError, RecursionError):
            return True
        return not isinstance(participant, str) or participant == self.name

    async def _handle(self, conn: asyncpg.Connection, item: Incoming) -> None:
        task = item.event.data
        assert isinstance(task, PrivacyTask)
        if task.participant != self.name:
            return
        item.span.set_attribute("lampo.request_id", task.request_id)
        item.span.set_attribute("lampo.task_id", task.task_id)
        item.span.set_attribute("lampo.participant", self.name)
        stored = await conn.fetchval("SELECT ack FROM privacy_tasks WHERE task_id = $1", task.task_id)
        if stored is not None:
            ack = PrivacyAck.model_validate(stored)
        else:
            ack = await self._run(conn, task)
            await conn.execute(
                "INSERT INTO privacy_tasks (task_id, request_id, kind, ack) VALUES ($1, $2, $3, $4)",
                task.task_id,
                task.request_id,
                task.kind,
                ack.model_dump(mode="json"),
            )
        await outbox.add(
            conn,
            [
                outbox.OutgoingEvent(
                    PRIVACY_ACKS,
                    task.request_id,
                    CloudEvent.new("privacy.ack", self.source, part),
                    traceparent=item.traceparent,
                )
                for part in split_result(ack)
            ],
        )

    async def _run(self, conn: asyncpg.Connection, task: PrivacyTask) -> PrivacyAck:
        handler = self.handlers.get(task.kind)
        base: dict[str, Any] = {"request_id": task.request_id, "task_id": task.task_id, "participant": self.name}
        if handler is None:
            return PrivacyAck(**base, status="failed", error=f"{self.name} does not handle '{task.kind}' tasks")
        try:
            async with conn.transaction():  # a failed task leaves no half-done effect
                outcome = await handler(conn, task)
        except TaskFailed as e:
            return PrivacyAck(**base, status="failed", error=e.error)
        result = None
        if outcome.result is not None:
            if not task.result_key:
                return PrivacyAck(**base, status="failed", error="access result requested without a result_key")
            payload = json.dumps(outcome.result, ensure_ascii=False, default=str).encode()
            result = seal(task.result_key, payload)
        return PrivacyAck(**base, status="done", erased=outcome.erased, retained=outcome.retained, result=result)


# A privacy.ack is one Kafka record (privacy.acks.v1 takes 2 MiB): a larger sealed result, such
# as an access result with call audio, travels in parts of this many characters.
RESULT_PART_CHARS = 512 * 1024


def split_result(ack: PrivacyAck, part_chars: int = RESULT_PART_CHARS) -> list[PrivacyAck]:
    """The ack as it goes on the wire: itself, or one ack per part of a large sealed result
    (same task, same counts; ``result_part`` of ``result_parts``)."""
    if ack.result is None or len(ack.result) <= part_chars:
        return [ack]
    pieces = [ack.result[i : i + part_chars] for i in range(0, len(ack.result), part_chars)]
    return [
        ack.model_copy(update={"result": piece, "result_part": n, "result_parts": len(pieces)})
        for n, piece in enumerate(pieces)
    ]


def join_result(parts: Mapping[int, str], total: int) -> str | None:
    """The whole sealed result once every part arrived, else None."""
    if len(parts) < total or any(n not in parts for n in range(total)):
        return None
    return "".join(parts[n] for n in range(total))


def subscribe(runtime: Any, participant: Participant) -> Any:
    """Register the participant's consumer of privacy.tasks.v1 on a service runtime."""
    return runtime.consume(
        PRIVACY_TASKS,
        participant.handler(),
        name=f"{participant.name}:privacy-tasks",
        select=participant.addressed_here,
    )
