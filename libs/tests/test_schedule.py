"""``Runtime.every``: a background job keeps its schedule through failing runs and stops with the
service (real broker and database: the runtime starts as a service does)."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from lampo.crypto import new_master_key
from lampo.service import Runtime
from lampo.settings import ServiceSettings
from lampo.testing import drop_database, eventually, running, unique


class ScheduleSettings(ServiceSettings):
    service: ClassVar[str] = "schedule"


async def test_a_job_runs_on_its_schedule_through_failures_and_stops_with_the_service(caplog) -> None:
    settings = ScheduleSettings(
        database=unique("test_schedule"), consumer_group=unique("test-schedule"), master_key=new_master_key()
    )
    runtime = Runtime(settings, migrations=None)
    runs: list[float] = []

    async def job() -> None:
        runs.append(asyncio.get_running_loop().time())
        if len(runs) == 1:
            raise ValueError("customer 123456-9999 is not valid")  # a message may quote data

    runtime.every("test job", job, interval_s=0.1, first_delay_s=0.2)
    runtime.every("never", job, interval_s=0, first_delay_s=0)
    before = asyncio.get_running_loop().time()
    async with running(runtime.app):
        await eventually(lambda: len(runs) >= 4, timeout=10)
    stopped = len(runs)
    await asyncio.sleep(0.3)
    await drop_database(settings.database or "")

    assert len(runs) >= 4  # the failed first run did not end the schedule
    assert runs[0] - before >= 0.2  # not before the first delay
    assert len(runs) == stopped  # nothing runs after shutdown
    failures = [r.getMessage() for r in caplog.records if "test job failed" in r.getMessage()]
    assert failures == ["schedule: test job failed: ValueError; next run in 0.1 s"]
    assert "123456" not in caplog.text
