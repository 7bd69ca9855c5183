"""The participants' answers, applied in batches: a fixed handful of round trips per request,
not per ack; each request touched is checked for completion once, after all its acks."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import asyncpg

from lampo.contracts.privacy import PrivacyAck
from lampo.dsar import domain
from lampo.dsar.errors import UnknownTask
from lampo.dsar.store import DsarStore
from lampo.participant import is_streamed, join_result, stream_run

if TYPE_CHECKING:
    from lampo.dsar.coordinator import Coordinator


async def on_acks(c: Coordinator, conn: asyncpg.Connection, acks: list[tuple[PrivacyAck, str]]) -> list[str]:
    """Apply a batch of participants' answers (ack, its event id), in order; one outcome each:
    "applied", "partial" (a part of a large result; the task waits for the rest), "ignored"
    (the task was already final: a late answer, kept as a record) or "not_ours" (another
    sender's request). An unknown task of one of our requests raises ``UnknownTask``
    (dead-lettered).

    Batch-shaped: the batch's tasks are read in one query, its requests locked in one (in
    request_id order, then their tasks), and each request touched is checked for completion
    once, after all its acks: a fixed handful of round trips per request, not per ack.
    privacy.acks.v1 also carries other senders' answers, which cost one lookup per batch."""
    store = DsarStore(conn)
    tasks = await store.tasks_by_id([ack.task_id for ack, _ in acks])
    unknown = {ack.request_id for ack, _ in acks if ack.task_id not in tasks}
    ours = await store.existing_requests(unknown) if unknown else set()
    outcomes: list[str | None] = []
    for ack, _ in acks:
        task = tasks.get(ack.task_id)
        if task is None:
            if ack.request_id not in ours:
                # Not a request of ours: privacy.acks.v1 also carries the answers to other
                # senders' tasks (retention's purges). Skipped, not dead-lettered.
                outcomes.append("not_ours")
                continue
            raise UnknownTask()
        if task["request_id"] != ack.request_id or task["participant"] != ack.participant:
            raise UnknownTask("data.task_id: belongs to another request or participant")
        outcomes.append(None)
    mine = [(i, ack, event_id) for i, (ack, event_id) in enumerate(acks) if outcomes[i] is None]
    if not mine:
        return [o or "not_ours" for o in outcomes]
    await store.lock_requests([ack.request_id for _, ack, _ in mine])
    locked = await store.tasks_by_id([ack.task_id for _, ack, _ in mine], lock=True)
    now = c.clock.now()
    finished: list[str] = []  # requests with a task made final here, in order of first ack
    for i, ack, event_id in mine:
        task = locked[ack.task_id]
        if task["status"] != domain.TASK_OPEN:
            await store.record_ignored_ack(
                event_id=event_id, task_id=ack.task_id, request_id=ack.request_id, participant=ack.participant,
                ack_status=ack.status, task_status=task["status"], at=now,
            )  # fmt: skip
            outcomes[i] = "ignored"
            continue
        sealed = ack.result
        streamed: dict[str, Any] = {}
        if ack.result is not None and is_streamed(ack.result):
            # A streamed result: each part is kept as it comes (and filed into the package
            # being built, if it comes in order); the task is done once every part of one
            # run is there (its last part names the total). Runs are never mixed: a task
            # read again (after a retry) sends a new run, and the first whole one wins.
            run = stream_run(ack.result)
            part = ack.result_part or 0
            building = await c._building_for(store, task)
            # The part is stored and filed at once: its INSERT goes out, and while PostgreSQL
            # writes it the part is opened and filed here (no statement of its own).
            adding = asyncio.ensure_future(
                store.add_streamed_part(ack.task_id, run, part, ack.result, ack.result_parts)
            )
            await asyncio.sleep(0)  # the INSERT is sent
            try:
                c._file(task, building, run, part, ack.result)
            finally:
                whole = await adding
            if not whole:
                outcomes[i] = "partial"  # the task stays open until its last part arrives
                continue
            sealed = None
            streamed = {"result_run": run, "result_parts": ack.result_parts or part + 1}
            await store.drop_result_parts(ack.task_id, keep_run=run)
        elif ack.result_parts is not None and ack.result_parts > 1 and ack.result is not None:
            if await store.add_result_part(ack.task_id, ack.result_part or 0, ack.result) < ack.result_parts:
                outcomes[i] = "partial"  # the task stays open until its last part arrives
                continue
            sealed = join_result(await store.result_parts(ack.task_id), ack.result_parts)
            await store.drop_result_parts(ack.task_id)
        else:
            await store.drop_result_parts(ack.task_id)  # a failed task's parts sent before it failed
        status = domain.TASK_DONE if ack.status == "done" else domain.TASK_FAILED
        await store.update_task(
            ack.task_id,
            status=status,
            finished_at=now,
            error=ack.error if ack.status == "failed" else None,
            erased={str(k): v for k, v in ack.erased.items()},
            retained=[r.model_dump(mode="json") for r in ack.retained],
            effects=[e.model_dump(mode="json", exclude_none=True) for e in ack.effects],
            sealed_result=sealed,
            **streamed,
        )
        locked[ack.task_id] = {**dict(task), "status": status}  # a repeated ack later in the batch is late
        outcomes[i] = "applied"
        if ack.request_id not in finished:
            finished.append(ack.request_id)
    for request_id in finished:
        await c._maybe_complete(conn, request_id)
    return [o or "not_ours" for o in outcomes]
