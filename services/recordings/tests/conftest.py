from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import pytest

from lampo.clock import ManualClock
from lampo.contracts.catalog import PRIVACY_TASKS, RECORDINGS_INBOUND
from lampo.crypto import new_master_key
from lampo.recordings.app import build
from lampo.recordings.settings import RecordingsSettings
from lampo.service import Runtime
from lampo.testing import drop_database, fast_forward_group, running, unique


@dataclass
class Recordings:
    runtime: Runtime
    settings: RecordingsSettings
    clock: ManualClock

    @property
    def inbound(self):  # type: ignore[no-untyped-def]
        return self.runtime.consumers[0]


@pytest.fixture
async def recordings() -> AsyncIterator[Recordings]:
    settings = RecordingsSettings(
        database=unique("test_recordings"),
        consumer_group=unique("test-recordings"),
        master_key=new_master_key(),
        participant_name=unique("recordings"),
    )
    await fast_forward_group(settings.consumer_group or "", [RECORDINGS_INBOUND, PRIVACY_TASKS])
    # Received-at times are real: `lampo recordings incomplete` reports ages against the system clock.
    clock = ManualClock(datetime.now(UTC))
    runtime = build(settings, clock=clock)
    async with running(runtime.app):
        yield Recordings(runtime, settings, clock)
    await drop_database(settings.database or "")


Scan = Callable[[asyncpg.Connection, list[str | bytes]], Awaitable[list[str]]]


@pytest.fixture
def scan() -> Scan:
    """Dump every text, bytea and jsonb column of every table and return ``table.column`` for
    each column in which one of ``needles`` appears (text needles also searched base64-encoded)."""

    async def run(conn: asyncpg.Connection, needles: list[str | bytes]) -> list[str]:
        raw = [n.encode() if isinstance(n, str) else n for n in needles]
        raw += [base64.b64encode(n) for n in raw if len(n) >= 6]
        columns = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
            " AND c.data_type IN ('text', 'bytea', 'jsonb', 'character varying', 'json')"
        )
        hits = []
        for col in columns:
            rows = await conn.fetch(
                f'SELECT "{col["column_name"]}"::text AS v, "{col["column_name"]}" AS raw FROM "{col["table_name"]}"'
            )
            for row in rows:
                value = row["raw"]
                blob = bytes(value) if isinstance(value, bytes | bytearray | memoryview) else (row["v"] or "").encode()
                if any(n in blob for n in raw):
                    hits.append(f"{col['table_name']}.{col['column_name']}")
                    break
        return hits

    return run
