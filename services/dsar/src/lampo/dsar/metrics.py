"""The coordinator's own metrics on /metrics, read from its database before each scrape:
requests by kind and state, time to completion (mean and worst), overdue requests, the time left
before the nearest deadline of a request still unanswered, task attempts retried and tasks failed
by participant. Plus ``lampo_dsar_duration_seconds``, a histogram of each request's time from
receipt to its completion (by kind and outcome), recorded by the coordinator as it completes one.
Labels are kinds, states and participant names only."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import asyncpg
from opentelemetry.metrics import CallbackOptions, Observation

from lampo.dsar.domain import UNANSWERED_STATUSES
from lampo.service import Runtime

# Told (kind, outcome status, seconds from receipt) as the coordinator completes a request.
CompletionRecorder = Callable[[str, str, float], None]

_REQUESTS = "SELECT kind, status, count(*) AS n FROM requests GROUP BY kind, status"
_COMPLETION = (
    "SELECT kind, avg(extract(epoch FROM completed_at - received_at)) AS mean,"
    " max(extract(epoch FROM completed_at - received_at)) AS worst"
    " FROM requests WHERE completed_at IS NOT NULL GROUP BY kind"
)
_OVERDUE = "SELECT count(*) FROM requests WHERE overdue_at IS NOT NULL AND completed_at IS NULL"
# Unanswered: open, or failed (a failed request still owes its answer; see domain.UNANSWERED_STATUSES).
_NEXT_DEADLINE = (
    "SELECT kind, extract(epoch FROM min(due_at) - $2) AS remaining FROM requests"
    " WHERE status = ANY($1::text[]) GROUP BY kind"
)
# From receipt to completion: a day is 86,400 s; the GDPR deadline is one month (Art. 12(3)).
DURATION_BUCKETS = (
    1.0,
    10.0,
    60.0,
    600.0,
    3600.0,
    6 * 3600.0,
    86_400.0,
    3 * 86_400.0,
    7 * 86_400.0,
    14 * 86_400.0,
    30 * 86_400.0,
)
_TASKS = (
    "SELECT participant, sum(attempt - 1) FILTER (WHERE current) AS retried,"
    " count(*) FILTER (WHERE current AND status = 'failed') AS failed FROM tasks GROUP BY participant"
)


def register(runtime: Runtime, pool: Callable[[], asyncpg.Pool]) -> CompletionRecorder:
    """The coordinator's gauges, refreshed before each scrape; returns the recorder of completions."""
    snapshot: dict[str, list[asyncpg.Record] | int] = {
        "requests": [], "completion": [], "tasks": [], "overdue": 0, "deadlines": [],
    }  # fmt: skip

    async def refresh() -> None:
        async with pool().acquire() as conn:
            snapshot["requests"] = await conn.fetch(_REQUESTS)
            snapshot["completion"] = await conn.fetch(_COMPLETION)
            snapshot["tasks"] = await conn.fetch(_TASKS)
            snapshot["overdue"] = int(await conn.fetchval(_OVERDUE))
            snapshot["deadlines"] = await conn.fetch(_NEXT_DEADLINE, list(UNANSWERED_STATUSES), runtime.clock.now())

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

    def next_deadline(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(float(r["remaining"]), {"kind": r["kind"]}) for r in rows("deadlines")]

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
    meter.create_observable_gauge(
        "lampo.dsar.next_deadline",
        [next_deadline],
        unit="s",
        description="time left before the nearest deadline of a request not yet answered (negative: past it)",
    )
    duration = meter.create_histogram(
        "lampo.dsar.duration",
        unit="s",
        description="time from receipt to completion of each request completed, by kind and outcome",
        explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
    )
    runtime.metrics.before_collect(refresh)

    def completed(kind: str, status: str, seconds: float) -> None:
        duration.record(max(0.0, seconds), {"kind": kind, "status": status})

    return completed
