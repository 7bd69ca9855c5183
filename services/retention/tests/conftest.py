from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lampo.clock import ManualClock
from lampo.crypto import new_master_key
from lampo.retention.app import Retention, build
from lampo.retention.settings import RetentionSettings
from lampo.testing import drop_database, fast_forward_group, running, signing_settings, unique

# Test helpers beside the tests (retention_events.py); pytest's importlib mode does not add this
# folder to the path by itself.
sys.path.insert(0, str(Path(__file__).parent))

START = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


def retention_settings(**overrides: object) -> RetentionSettings:
    values: dict[str, object] = {
        "database": unique("test_retention"),
        "consumer_group": unique("test-retention"),
        "master_key": new_master_key(),
        "sweep_interval_s": 0,  # sweeps run when a test says so
        **signing_settings("retention"),
    }
    values.update(overrides)
    return RetentionSettings(**values)  # type: ignore[arg-type]


@dataclass
class Running:
    service: Retention
    clock: ManualClock
    settings: RetentionSettings


@pytest.fixture
def start_retention() -> Callable[..., object]:
    """An async context manager factory: a retention service with its own database and group."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def start(**overrides: object) -> AsyncIterator[Running]:
        settings = retention_settings(**overrides)
        clock = ManualClock(START)
        service = build(settings, clock=clock)
        await fast_forward_group(settings.consumer_group or "", [c.topic for c in service.runtime.consumers])
        try:
            async with running(service.runtime.app):
                yield Running(service, clock, settings)
        finally:
            await drop_database(settings.database or "")

    return start


@pytest.fixture
async def retention(start_retention) -> AsyncIterator[Running]:  # type: ignore[no-untyped-def]
    async with start_retention() as r:
        yield r
