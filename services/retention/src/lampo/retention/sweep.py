"""Sweeps: find what the data map says must go now and send ``purge`` tasks to the participants
that hold it, through the outbox, with a proof-of-deletion record per rule and category.

A sweep first lists the customer numbers that may have anything due (one index read: clocks
old enough for some rule), then works through them in batches, one short transaction each:
evaluate exactly what is due for the batch (a hold placed meanwhile wins: placing a hold waits
for the batch and the batch for the hold) and record the purges in one statement (set-based:
the due rows stay in the database, one row per task comes back), then write the tasks to the
outbox in one more. Between batches it yields (``pause_s``), so consumers of this and other
services keep their share of the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from lampo.clock import Clock
from lampo.contracts.catalog import PRIVACY_TASKS
from lampo.contracts.envelope import CloudEvent
from lampo.datamap import DataMap
from lampo.messaging import outbox
from lampo.retention import store
from lampo.retention.domain import SOURCE, category_order, purge_task
from lampo.retention.errors import RetentionError

log = logging.getLogger("lampo.retention.sweep")

Progress = Callable[[int, int], None]
"""progress(candidate customer numbers done, candidates in all); ``SweepResult.customers``
counts those that had something due."""


class SweepRunning(RetentionError):
    """Another sweep holds the sweep lock."""


@dataclass
class SweepResult:
    sweep_id: str
    as_of: datetime
    customers: int = 0
    tasks: int = 0
    purges: int = 0
    per_rule: dict[str, int] = field(default_factory=dict)
    per_participant: dict[str, int] = field(default_factory=dict)


@dataclass
class Sweeper:
    pool: asyncpg.Pool
    datamap: DataMap
    clock: Clock
    batch: int = 1000
    pause_s: float = 0.0
    deadline: timedelta = timedelta(days=7)
    workers: int = 1
    """Batches in flight at once, each on its own connection in its own transaction: while one
    batch's statement runs in the database, another's tasks are serialized here."""

    async def due(self, now: datetime | None = None) -> dict[str, tuple[int, int]]:
        """{rule: (due, held)} as of ``now``: what a sweep would purge, and what holds keep."""
        now = now or self.clock.now()
        async with self.pool.acquire() as conn, conn.transaction():
            await store.use_finnish_time(conn)
            rows = await store.due_counts(conn, self.datamap, now)
        counts = {r["rule"]: (int(r["due"]), int(r["held"])) for r in rows}
        return {rule.rule: counts.get(rule.rule, (0, 0)) for _, rule in self.datamap.rules()}

    async def sweep(
        self, now: datetime | None = None, *, interface: str = "daily", progress: Progress | None = None
    ) -> SweepResult:
        now = now or self.clock.now()
        result = SweepResult(sweep_id=f"sweep-{uuid.uuid4()}", as_of=now)
        async with self.pool.acquire() as lock_conn:
            if not await store.try_lock_sweep(lock_conn):
                raise SweepRunning("another sweep is running")
            try:
                await self._sweep(result, interface, progress)
            finally:
                await store.unlock_sweep(lock_conn)
        log.info(
            "sweep %s: %d customers, %d purge tasks, %d purges",
            result.sweep_id,
            result.customers,
            result.tasks,
            result.purges,
        )
        return result

    async def _sweep(self, result: SweepResult, interface: str, progress: Progress | None) -> None:
        now = result.as_of
        async with self.pool.acquire() as conn:
            await store.start_sweep(conn, result.sweep_id, now, interface)
            async with conn.transaction():
                await store.use_finnish_time(conn)
                customers = await store.sweep_candidates(conn, self.datamap, now)
        total, done = len(customers), 0
        if progress:
            progress(0, total)
        chunks = iter([customers[start : start + self.batch] for start in range(0, total, self.batch)])

        async def work() -> None:
            nonlocal done
            for chunk in chunks:  # shared: each worker takes the next batch
                await self._batch(result, chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
                if self.pause_s:
                    await asyncio.sleep(self.pause_s)

        workers = [asyncio.create_task(work()) for _ in range(max(1, self.workers))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for w in workers:  # a failed batch stops the sweep (as with one worker): the next sweep goes on
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        async with self.pool.acquire() as conn:
            await store.finish_sweep(conn, result.sweep_id, result.tasks, result.purges)

    async def _batch(self, result: SweepResult, customers: list[str]) -> None:
        now = result.as_of
        async with self.pool.acquire() as conn, conn.transaction():
            await store.lock_holds(conn, shared=True)
            await store.use_finnish_time(conn)
            # re-evaluated now and recorded as proof of deletion in one statement
            issued = await store.issue_purges(conn, self.datamap, now, customers, result.sweep_id)
            if not issued:
                return
            await outbox.add(conn, task_records(issued, sweep_id=result.sweep_id, now=now, deadline=self.deadline))
        result.tasks += len(issued)
        result.customers += len({r["customer_number"] for r in issued})
        for r in issued:
            result.per_participant[r["participant"]] = result.per_participant.get(r["participant"], 0) + 1
            result.purges += len(r["rules"])
            for rule in r["rules"]:
                result.per_rule[rule] = result.per_rule.get(rule, 0) + 1


def task_records(
    issued: Sequence[Mapping[str, Any]], *, sweep_id: str, now: datetime, deadline: timedelta
) -> list[outbox.Record]:
    """The ``privacy.task`` events of a batch (rows of ``store.issue_purges``) as outbox records.

    The first task is built and checked by the contract models (``PrivacyTask``, ``CloudEvent``);
    the others are that envelope with their own id and task fields, serialized the way the models
    serialize (compact JSON, fields in model order): the models cost ~0.3 ms a task, a sweep
    sends 100,000. The fields come from the data map (validated at start) and the clocks'
    customer and subject ids (validated when they arrived). test_sweeps holds every record equal
    to the models' own serialization."""
    if not issued:
        return []
    first = issued[0]
    template = CloudEvent.new(
        "privacy.task",
        SOURCE,
        purge_task(
            sweep_id=sweep_id,
            task_id=first["task_id"],
            participant=first["participant"],
            customer_number=first["customer_number"],
            subject_id=first["subject_id"],
            categories=first["categories"],
            now=now,
            deadline=deadline,
        ),
    ).model_dump(mode="json")
    data = template["data"]
    records = []
    for r in issued:
        event_id = str(uuid.uuid4())
        event = {
            **template,
            "id": event_id,
            "data": {
                **data,
                "task_id": r["task_id"],
                "participant": r["participant"],
                "subject": {"subject_id": r["subject_id"], "customer_numbers": [r["customer_number"]]},
                "categories": category_order(r["categories"]),
            },
        }
        value = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        records.append(outbox.Record(PRIVACY_TASKS, sweep_id, value, event_id, "privacy.task", r["subject_id"]))
    return records


async def daily_sweep(sweeper: Sweeper) -> None:
    """The scheduled sweep (``Runtime.every``): skipped while another sweep runs."""
    try:
        await sweeper.sweep(interface="daily")
    except SweepRunning:
        log.info("daily sweep skipped: another sweep is running")
