from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from lampo.billing.app import build
from lampo.billing.settings import BillingSettings
from lampo.clock import ManualClock
from lampo.contracts.catalog import BILLING_INBOUND, PRIVACY_TASKS
from lampo.crypto import new_master_key
from lampo.service import Runtime
from lampo.testing import drop_database, fast_forward_group, running, scan_tables, signing_settings, unique


@dataclass
class Billing:
    runtime: Runtime
    settings: BillingSettings
    clock: ManualClock

    @property
    def inbound(self):  # type: ignore[no-untyped-def]
        return self.runtime.consumers[0]


@asynccontextmanager
async def running_billing(**overrides: Any) -> AsyncIterator[Billing]:
    """A billing service in this process on a new database, its clock at 2026-11-28; scheduled
    deletions off unless ``overrides`` turn them on (tests call ``purge_due`` themselves)."""
    settings = BillingSettings(
        **{
            "database": unique("test_billing"),
            "consumer_group": unique("test-billing"),
            "master_key": new_master_key(),
            "participant_name": (name := unique("billing")),
            "signer": name,
            **signing_settings(name),
            "purge_interval_s": 0,
            **overrides,
        }
    )
    await fast_forward_group(settings.consumer_group or "", [BILLING_INBOUND, PRIVACY_TASKS])
    clock = ManualClock(datetime(2026, 11, 28, 10, 0, tzinfo=UTC))
    runtime = build(settings, clock=clock)
    async with running(runtime.app):
        yield Billing(runtime, settings, clock)
    await drop_database(settings.database or "")


@pytest.fixture
def start_billing() -> Callable[..., AbstractAsyncContextManager[Billing]]:
    """:func:`running_billing`, for tests that need settings of their own."""
    return running_billing


@pytest.fixture
async def billing() -> AsyncIterator[Billing]:
    async with running_billing() as service:
        yield service


Scan = Callable[[asyncpg.Connection, list[str | bytes]], Awaitable[list[str]]]


@pytest.fixture
def scan() -> Scan:
    """:func:`lampo.testing.scan_tables`: ``table.column`` of each column holding one of the needles."""
    return scan_tables
