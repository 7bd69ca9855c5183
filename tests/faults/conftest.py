"""Fault tests: the whole suite as processes (tests/suite.py) against a Kafka broker and a
PostgreSQL server of their own, which the tests kill, stop and restart.

They run only under `make test-faults` (tests/faults/run.sh), which starts that broker and
database on other ports (19092, 15432) and sets LAMPO_FAULTS=1; a plain `pytest` skips them,
so they can never stop the shared broker and database of `make test`."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

sys.path.insert(0, str(Path(__file__).parent))  # the tests import `faultkit`

from suite import Suite, installed, launch

from lampo.messaging.topics import TOPICS
from lampo.testing import BOOTSTRAP, PG_URL, kafka_options
from lampo.testing import _partitions as topic_partitions

HERE = Path(__file__).parent
REPO = HERE.parent.parent
SHARED = ("127.0.0.1:9092", "localhost:9092")


def fault_infrastructure() -> str | None:
    """Why the fault tests cannot run here, or None when they can."""
    if os.environ.get("LAMPO_FAULTS") != "1":
        return "fault tests stop and restart Kafka and PostgreSQL: run them with `make test-faults`"
    if BOOTSTRAP in SHARED or ":5432/" in PG_URL or "LAMPO_STATE_DIR" not in os.environ:
        return "fault tests refuse the shared broker/database (9092/5432): `make test-faults` starts their own"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = fault_infrastructure()
    if reason is None:
        return
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=reason))


class Infrastructure:
    """The fault run's own broker and database, stopped and started through the same scripts
    as everywhere (deploy/local/kafka.sh, postgres.sh), with the environment run.sh set."""

    async def _script(self, name: str, command: str) -> None:
        process = await asyncio.create_subprocess_exec(
            str(REPO / "deploy" / "local" / name),
            command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        assert process.returncode == 0, f"{name} {command} failed:\n{out.decode(errors='replace')}"

    async def stop_kafka(self) -> None:
        await self._script("kafka.sh", "stop")

    async def start_kafka(self) -> None:
        await self._script("kafka.sh", "start")

    async def stop_postgres(self) -> None:
        await self._script("postgres.sh", "stop")

    async def start_postgres(self) -> None:
        await self._script("postgres.sh", "start")


@pytest.fixture(scope="session")
def infrastructure() -> Infrastructure:
    return Infrastructure()


@dataclass
class BrokerHistory:
    """Whether every topic was empty when the session began (so everything on the broker was
    published by this session's tests, as under `make test-faults`, which wipes its broker)."""

    fresh: bool


@pytest.fixture(scope="session")
async def broker_history() -> BrokerHistory:
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, **kafka_options())
    await consumer.start()
    try:
        partitions = [TopicPartition(t.name, p) for t in TOPICS for p in await topic_partitions(consumer, t.name)]
        ends = await consumer.end_offsets(partitions)
        return BrokerHistory(fresh=not any(ends.values()))
    finally:
        await consumer.stop()


@pytest.fixture(scope="session")
async def suite(broker_history: BrokerHistory) -> AsyncIterator[Suite]:
    logs = Path(os.environ["LAMPO_STATE_DIR"]) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # The retention's daily sweep is a schedule (first run 60 s after start), not an effect of
    # consumed events: off here, so the replay test compares only what consumption does.
    running = await launch(installed(), logs, env={"LAMPO_SWEEP_INTERVAL_S": "0"})
    try:
        yield running
    finally:
        await running.close()
