"""The coordinator's own metrics on /metrics, read from its database before each scrape:
requests by kind and state, time to completion, overdue requests, task attempts retried and
tasks failed by participant. Labels are kinds, states and participant names only."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import asyncpg
from opentelemetry.metrics import CallbackOptions, Observation

from lampo.service import Runtime

_REQUESTS = "SELECT kind, status, count(*) AS n FROM requests GROUP BY kind, status"
_COMPLETION = (
    "SELECT kind, avg(extract(epoch FROM completed_at - received_at)) AS mean,"
    " max(extract(epoch FROM completed_at - received_at)) AS worst"
    " FROM requests WHERE completed_at IS NOT NULL GROUP BY kind"
)
_OVERDUE = "SELECT count(*) FROM requests WHERE overdue_at IS NOT NULL AND completed_at IS NULL"
_TASKS = (
    "SELECT participant, sum(attempt - 1) FILTER (WHERE current) AS retried,"
    " count(*) FILTER (WHERE current AND status = 'failed') AS failed FROM tasks GROUP BY participant"
)


def register(runtime: Runtime, pool: Callable[[], asyncpg.Pool]) -> None:
    snapshot: dict[str, list[asyncpg.Record] | int] = {"requests": [], "completion": [], "tasks": [], "overdue": 0}

    async def refresh() -> None:
        async with pool().acquire() as conn:
            snapshot["requests"] = await conn.fetch(_REQUESTS)
            snapshot["completion"] = await conn.fetch(_COMPLETION)
            snapshot["tasks"] = await conn.fetch(_TASKS)
            snapshot["overdue"] = int(await conn.fetchval(_OVERDUE))

    def rows(name: str) -> list[asyncpg.Record]:
        value = snapshot[name]
        return value if isinstance(value, list) else []

    def requests(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(r["n"], {"kind": r["kind"], "state": r["status"]}) for r in rows("requests")]

    def completion_mean(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(float(r["mean"]), {"kind": r["kind"]}) for r in rows("completion")]

    def completion_max(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(float(r["worst"]), {"kind": r["kind"]}) for r in rows("completion")]

    def overdue(_: CallbackOptions) -> Iterable[Observation]:
        value = snapshot["overdue"]
        return [Observation(value if isinstance(value, int) else 0)]

    def retried(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(int(r["retried"] or 0), {"participant": r["participant"]}) for r in rows("tasks")]

    def failed(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(int(r["failed"] or 0), {"participant": r["participant"]}) for r in rows("tasks")]

    meter = runtime.meter
    meter.create_observable_gauge("lampo.dsar.requests", [requests], description="requests by kind and state")
    meter.create_observable_gauge(
        "lampo.dsar.completion_mean",
        [completion_mean],
        unit="s",
        description="mean time from receipt to completion",
    )
    meter.create_observable_gauge(
        "lampo.dsar.completion_max",
        [completion_max],
        unit="s",
        description="longest time from receipt to completion",
    )
    meter.create_observable_gauge(
        "lampo.dsar.overdue", [overdue], description="requests past their deadline and not completed"
    )
    meter.create_observable_gauge(
        "lampo.dsar.task_retries", [retried], description="task attempts sent again, by participant"
    )
    meter.create_observable_gauge(
        "lampo.dsar.tasks_failed", [failed], description="tasks that ended failed, by participant"
    )
    runtime.metrics.before_collect(refresh)
