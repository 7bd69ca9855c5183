"""Every SQL statement of the retention service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import asyncpg

from lampo.contracts.categories import Category
from lampo.contracts.retention import LegalHoldPlaced
from lampo.datamap import DataMap
from lampo.retention.domain import HeldData

# Advisory lock keys: placing a hold waits for a running sweep batch (and the reverse), so a
# batch never purges data a hold committed just before it; one sweep at a time.
HOLDS_LOCK: Final = 0x4C414D50_0001
SWEEP_LOCK: Final = 0x4C414D50_0002

PER_CUSTOMER_TRIGGERS: Final = ("relationship_ended", "financial_year_end", "recording_made", "consent_withdrawn")
CUSTOMER_MARKERS: Final = ("relationship_ended", "financial_year_end")
"""A customer number with either clock is (or was) a customer, not a prospect."""


# -- clocks --------------------------------------------------------------------------------------


async def note_subjects(conn: asyncpg.Connection, pairs: Sequence[tuple[str, str]]) -> None:
    """(customer_number, subject_id)."""
    await conn.executemany(
        "INSERT INTO subjects (customer_number, subject_id) VALUES ($1, $2)"
        " ON CONFLICT (customer_number) DO UPDATE SET subject_id = EXCLUDED.subject_id, updated_at = now()",
        pairs,
    )


async def start_clocks(conn: asyncpg.Connection, clocks: Sequence[tuple[str, str, str, datetime]]) -> None:
    """(customer_number, trigger, category, at): a clock only moves forward."""
    await conn.executemany(
        "INSERT INTO clocks (customer_number, trigger, category, started_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (customer_number, trigger, category)"
        " DO UPDATE SET started_at = GREATEST(clocks.started_at, EXCLUDED.started_at)",
        clocks,
    )


async def stop_clock(conn: asyncpg.Connection, customer_number: str, trigger: str, before: datetime) -> None:
    """Remove a clock started before ``before`` (e.g. consent granted again after a withdrawal)."""
    await conn.execute(
        "DELETE FROM clocks WHERE customer_number = $1 AND trigger = $2 AND started_at < $3",
        customer_number,
        trigger,
        before,
    )


async def forget_activity(conn: asyncpg.Connection, customer_number: str, categories: Sequence[str]) -> None:
    await conn.execute(
        "DELETE FROM clocks WHERE customer_number = $1 AND trigger = 'last_activity' AND category = ANY($2::text[])",
        customer_number,
        list(categories),
    )


async def clocks_of(conn: asyncpg.Connection, customer_number: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT trigger, category, started_at FROM clocks WHERE customer_number = $1 ORDER BY trigger, category",
        customer_number,
    )
    return rows


# -- holds ---------------------------------------------------------------------------------------


async def lock_holds(conn: asyncpg.Connection, *, shared: bool) -> None:
    fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await conn.execute(f"SELECT {fn}($1)", HOLDS_LOCK)


async def hold(conn: asyncpg.Connection, hold_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow("SELECT * FROM holds WHERE hold_id = $1", hold_id)
    return row


async def insert_hold(conn: asyncpg.Connection, placed: LegalHoldPlaced) -> None:
    await conn.execute(
        "INSERT INTO holds (hold_id, customer_number, categories, case_reference, authority, placed_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        placed.hold_id,
        placed.customer_number,
        [c.value for c in placed.categories],
        placed.case_reference,
        placed.authority,
        placed.placed_at,
    )


async def release_hold(conn: asyncpg.Connection, hold_id: str, released_at: datetime) -> None:
    await conn.execute("UPDATE holds SET released_at = $2 WHERE hold_id = $1", hold_id, released_at)


async def standing_holds(conn: asyncpg.Connection, customer_number: str) -> list[HeldData]:
    rows = await conn.fetch(
        "SELECT hold_id, categories, case_reference, authority, placed_at FROM holds"
        " WHERE customer_number = $1 AND released_at IS NULL ORDER BY placed_at, hold_id",
        customer_number,
    )
    return [
        HeldData(
            hold_id=r["hold_id"],
            categories=[Category(c) for c in r["categories"]],
            case_reference=r["case_reference"],
            authority=r["authority"],
            placed_at=r["placed_at"],
        )
        for r in rows
    ]


async def list_holds(
    conn: asyncpg.Connection, customer_number: str | None, *, include_released: bool
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM holds WHERE ($1::text IS NULL OR customer_number = $1)"
        " AND ($2 OR released_at IS NULL) ORDER BY placed_at, hold_id",
        customer_number,
        include_released,
    )
    return rows


async def audit(
    conn: asyncpg.Connection,
    *,
    action: str,
    hold_id: str,
    customer_number: str,
    actor: str,
    interface: str,
    event_id: str | None,
    effective_at: datetime,
    detail: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO hold_audit (action, hold_id, customer_number, actor, interface, event_id, effective_at, detail)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)",
        action,
        hold_id,
        customer_number,
        actor,
        interface,
        event_id,
        effective_at,
        detail,  # the pool's jsonb codec encodes it
    )


async def audit_of(conn: asyncpg.Connection, hold_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch("SELECT * FROM hold_audit WHERE hold_id = $1 ORDER BY id", hold_id)
    return rows


# -- what is due ---------------------------------------------------------------------------------

_DUE = """
WITH rules AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::int[])
        AS r(rule, trigger, category, participant, years, months, days)
),
scoped AS ({scoped}),
triggers AS (
    SELECT customer_number, trigger, max(started_at) AS trigger_at FROM scoped
    WHERE trigger = ANY($9::text[])
    GROUP BY customer_number, trigger
    UNION ALL
    SELECT customer_number, 'last_activity', max(started_at) FROM scoped
    GROUP BY customer_number
    HAVING NOT bool_or(trigger = ANY($10::text[]))
),
due AS (
    SELECT t.customer_number, r.rule, r.trigger, r.category, r.participant, t.trigger_at,
           t.trigger_at + make_interval(years => r.years, months => r.months, days => r.days) AS due_at
    FROM triggers t JOIN rules r ON r.trigger = t.trigger
)
SELECT d.*, coalesce(s.subject_id, d.customer_number) AS subject_id,
       EXISTS (SELECT 1 FROM holds h WHERE h.customer_number = d.customer_number AND h.released_at IS NULL
               AND (cardinality(h.categories) = 0 OR d.category = ANY(h.categories))) AS held
FROM due d LEFT JOIN subjects s ON s.customer_number = d.customer_number
WHERE d.due_at <= $8
  AND NOT EXISTS (SELECT 1 FROM purges p WHERE p.customer_number = d.customer_number
                  AND p.rule = d.rule AND p.trigger_at = d.trigger_at)
"""
_DUE_ALL = _DUE.format(scoped="SELECT customer_number, trigger, started_at FROM clocks")
# A batch drives the query from its customer numbers: index look-ups, not a scan of every clock.
_DUE_SOME = _DUE.format(
    scoped="SELECT c.customer_number, c.trigger, c.started_at FROM unnest($11::text[]) AS b(customer_number)"
    " JOIN clocks c ON c.customer_number = b.customer_number"
)


def _rule_args(datamap: DataMap) -> list[Any]:
    rules = datamap.rules()
    return [
        [r.rule for _, r in rules],
        [r.trigger for _, r in rules],
        [c.value for c, _ in rules],
        [r.participant for _, r in rules],
        [r.period.years for _, r in rules],
        [r.period.months for _, r in rules],
        [r.period.days for _, r in rules],
    ]


async def use_finnish_time(conn: asyncpg.Connection) -> None:
    """Calendar periods (months, years) are added in Finnish time; call inside a transaction."""
    await conn.execute("SET LOCAL timezone = 'Europe/Helsinki'")


async def due_counts(conn: asyncpg.Connection, datamap: DataMap, now: datetime) -> list[asyncpg.Record]:
    """Per rule: how many customer numbers are due, and how many of those a hold keeps."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT rule, count(*) FILTER (WHERE NOT held) AS due, count(*) FILTER (WHERE held) AS held"
        f" FROM ({_DUE_ALL}) x GROUP BY rule",
        *_rule_args(datamap),
        now,
        list(PER_CUSTOMER_TRIGGERS),
        list(CUSTOMER_MARKERS),
    )
    return rows


# Customer numbers that may have something due, from the clocks index (trigger, started_at)
# alone: a clock can make a rule due only if it started before now minus the rule's period.
# Calendar periods in Finnish time are not exactly reversible (31 Jan + 1 month = 28 Feb; a day
# can be 23 or 25 hours), so the bound has a 4-day margin; the batch then evaluates exactly.
# A prospect's last activity is its latest clock of any kind but the customer markers.
_CANDIDATES = """
WITH rules AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::int[]) AS r(trigger, years, months, days)
),
latest AS (
    SELECT trigger, max($5::timestamptz - make_interval(years => years, months => months, days => days)) + interval '4 days'
           AS started_by
    FROM rules GROUP BY trigger
),
bounds AS (
    SELECT t.trigger,
           greatest(own.started_by, CASE WHEN t.trigger = ANY($7::text[]) THEN NULL ELSE prospect.started_by END)
           AS started_by
    FROM unnest($6::text[]) AS t(trigger)
    LEFT JOIN latest own ON own.trigger = t.trigger
    LEFT JOIN latest prospect ON prospect.trigger = 'last_activity'
)
SELECT DISTINCT c.customer_number FROM bounds b JOIN clocks c ON c.trigger = b.trigger AND c.started_at <= b.started_by
ORDER BY c.customer_number
"""


async def sweep_candidates(conn: asyncpg.Connection, datamap: DataMap, now: datetime) -> list[str]:
    """Customer numbers that may have something due, in order: every customer number with
    something due is among them (held or not); a sweep batch evaluates them exactly. An index
    range scan per trigger instead of evaluating every rule for every customer number."""
    rules = [r for _, r in datamap.rules()]
    rows = await conn.fetch(
        _CANDIDATES,
        [r.trigger for r in rules],
        [r.period.years for r in rules],
        [r.period.months for r in rules],
        [r.period.days for r in rules],
        now,
        [*PER_CUSTOMER_TRIGGERS, "last_activity"],
        list(CUSTOMER_MARKERS),
    )
    return [r["customer_number"] for r in rows]


# -- sweeps and proof of deletion ----------------------------------------------------------------

# ``datetime.isoformat()`` of a timestamptz as asyncpg returns it (UTC), in SQL.
_ISO = (
    "to_char({t} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
    " || CASE WHEN extract(microseconds FROM {t} AT TIME ZONE 'UTC')::bigint % 1000000 = 0 THEN ''"
    " ELSE to_char({t} AT TIME ZONE 'UTC', '.US') END || '+00:00'"
)
# What is due for a batch of customer numbers, recorded as proof of deletion in the same
# statement, one row per task back: the rows never travel to the client and back. The task id
# is domain.task_id_of computed in SQL (sha256 of participant|customer|sorted rule@clock).
_ISSUE = f"""
WITH due AS MATERIALIZED (
    SELECT x.*, x.rule || '@' || {_ISO.format(t="x.trigger_at")} AS part FROM ({_DUE_SOME}) x WHERE NOT held
),
tasks AS (
    SELECT participant, customer_number,
           'purge-' || left(encode(sha256(convert_to(participant || '|' || customer_number || '|'
               || string_agg(part, '|' ORDER BY part COLLATE "C"), 'UTF8')), 'hex'), 32) AS task_id
    FROM due GROUP BY participant, customer_number
),
recorded AS (
    INSERT INTO purges (sweep_id, task_id, rule, category, participant, customer_number, subject_id,
                        trigger, trigger_at, due_at, issued_at)
    SELECT $12, t.task_id, d.rule, d.category, d.participant, d.customer_number, d.subject_id,
           d.trigger, d.trigger_at, d.due_at, $13
    FROM due d JOIN tasks t USING (participant, customer_number)
    RETURNING task_id, participant, customer_number, subject_id, category, rule
)
SELECT task_id, participant, customer_number, min(subject_id) AS subject_id,
       array_agg(category) AS categories, array_agg(rule) AS rules
FROM recorded GROUP BY task_id, participant, customer_number
ORDER BY customer_number COLLATE "C", participant COLLATE "C"
"""


async def issue_purges(
    conn: asyncpg.Connection, datamap: DataMap, now: datetime, customers: Sequence[str], sweep_id: str
) -> list[asyncpg.Record]:
    """Record what is due (and not held) for these customer numbers, evaluated now, as purges of
    this sweep; one row per purge task: task_id, participant, customer_number, subject_id,
    categories, rules (one entry per purge record)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        _ISSUE,
        *_rule_args(datamap),
        now,
        list(PER_CUSTOMER_TRIGGERS),
        list(CUSTOMER_MARKERS),
        list(customers),
        sweep_id,
        now,
    )
    return rows


async def try_lock_sweep(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", SWEEP_LOCK))


async def unlock_sweep(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", SWEEP_LOCK)


async def start_sweep(conn: asyncpg.Connection, sweep_id: str, as_of: datetime, interface: str) -> None:
    await conn.execute(
        "INSERT INTO sweeps (sweep_id, as_of, interface) VALUES ($1, $2, $3)", sweep_id, as_of, interface
    )


async def finish_sweep(conn: asyncpg.Connection, sweep_id: str, tasks: int, purges: int) -> None:
    await conn.execute(
        "UPDATE sweeps SET finished_at = now(), tasks = $2, purges = $3 WHERE sweep_id = $1", sweep_id, tasks, purges
    )


async def confirm_purges(
    conn: asyncpg.Connection, answers: Sequence[tuple[str, str, datetime, dict[str, Any], str | None]]
) -> None:
    """(task_id, status, at, outcome {category: {erased, retained, basis}}, error)."""
    await conn.executemany(
        "UPDATE purges SET status = $2, confirmed_at = $3,"
        " erased = ($4::jsonb -> category ->> 'erased')::int,"
        " retained = ($4::jsonb -> category ->> 'retained')::int,"
        " retained_basis = $4::jsonb -> category ->> 'basis', error = $5"
        " WHERE task_id = $1 AND status = 'issued'",
        answers,
    )


async def purges_of(conn: asyncpg.Connection, customer_number: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM purges WHERE customer_number = $1 ORDER BY id", customer_number
    )
    return rows
