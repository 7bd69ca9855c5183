from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from lampo.clock import ManualClock
from lampo.contracts.catalog import PRIVACY_TASKS, RECORDINGS_INBOUND
from lampo.crypto import new_master_key
from lampo.recordings.app import build
from lampo.recordings.settings import RecordingsSettings
from lampo.service import Runtime
from lampo.testing import drop_database, fast_forward_group, running, scan_tables, signing_settings, unique


@dataclass
class Recordings:
    runtime: Runtime
    settings: RecordingsSettings
    clock: ManualClock

    @property
    def inbound(self):  # type: ignore[no-untyped-def]
        return self.runtime.consumers[0]


@asynccontextmanager
async def running_recordings(**overrides: Any) -> AsyncIterator[Recordings]:
    """A recordings service in this process on a new database; ``overrides`` are settings."""
    settings = RecordingsSettings(
        **{
            "database": unique("test_recordings"),
            "consumer_group": unique("test-recordings"),
            "master_key": new_master_key(),
            "participant_name": (name := unique("recordings")),
            "signer": name,
            **signing_settings(name),
            **overrides,
        }
    )
    await fast_forward_group(settings.consumer_group or "", [RECORDINGS_INBOUND, PRIVACY_TASKS])
    # Received-at times are real: `lampo recordings incomplete` reports ages against the system clock.
    clock = ManualClock(datetime.now(UTC))
    runtime = build(settings, clock=clock)
    async with running(runtime.app):
        yield Recordings(runtime, settings, clock)
    await drop_database(settings.database or "")


@pytest.fixture
def start_recordings() -> Callable[..., AbstractAsyncContextManager[Recordings]]:
    """:func:`running_recordings`, for tests that need settings of their own."""
    return running_recordings


@pytest.fixture
async def recordings() -> AsyncIterator[Recordings]:
    async with running_recordings() as service:
        yield service


Scan = Callable[[asyncpg.Connection, list[str | bytes]], Awaitable[list[str]]]


@pytest.fixture
def scan() -> Scan:
    """:func:`lampo.testing.scan_tables`: ``table.column`` of each column holding one of the needles."""
    return scan_tables
