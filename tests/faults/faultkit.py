"""Helpers of the fault tests: reading a service's database and whole topics, and a company
system that keeps re-sending what the broker did not acknowledge (as a real one must)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from suite import Suite

from lampo.contracts.envelope import CONTENT_TYPE, CloudEvent
from lampo.db.pool import server_url_of
from lampo.testing import BOOTSTRAP, PG_URL, kafka_options
from lampo.testing import _partitions as topic_partitions

log = logging.getLogger("faults")


def database(suite: Suite, service: str) -> str:
    return suite[service].env["LAMPO_DATABASE"]


async def query(db: str, sql: str, *args: Any, timeout: float = 60) -> list[asyncpg.Record]:
    """Rows of ``sql`` in database ``db``, retrying while the server is (re)starting."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            conn = await asyncpg.connect(server_url_of(PG_URL, db), timeout=5)
            try:
                return list(await conn.fetch(sql, *args))
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, asyncpg.InterfaceError):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def read_topic(topic: str) -> list[ConsumerRecord[Any, Any]]:
    """Every record of ``topic`` from offset 0 to its current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False, **kafka_options())
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await topic_partitions(consumer, topic))]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[ConsumerRecord[Any, Any]] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, rs in batch.items():
                records += [r for r in rs if r.offset < ends[tp]]
        return records
    finally:
        await consumer.stop()


def data(record: ConsumerRecord[Any, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(record.value)
    return body


def header(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


class StubbornSystem:
    """A company system publishing a list of records at a steady rate; a send the broker does
    not acknowledge (broker down, leader moving) is sent again, same bytes, until it is. So a
    record may reach the topic twice (the event id then says it is the same event), never zero
    times: the at-least-once producer the services are built for."""

    def __init__(
        self, topic: str, items: Sequence[tuple[str | None, CloudEvent | bytes]], *, per_second: float
    ) -> None:
        self.topic = topic
        self.items = [(k, v.to_bytes() if isinstance(v, CloudEvent) else v) for k, v in items]
        self.per_second = per_second
        self.sent = 0
        self.resends = 0

    def _producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=BOOTSTRAP, enable_idempotence=True, request_timeout_ms=5000, **kafka_options()
        )

    async def run(self) -> None:
        producer = await self._connect()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            for i, (key, value) in enumerate(self.items):
                delay = t0 + i / self.per_second - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                while True:
                    try:
                        await asyncio.wait_for(
                            producer.send_and_wait(
                                self.topic,
                                value,
                                key=key.encode() if key is not None else None,
                                headers=[("content-type", CONTENT_TYPE.encode())],
                            ),
                            timeout=10,
                        )
                        break
                    except Exception as e:  # any failure to get an ack: send again
                        self.resends += 1
                        log.info("send not acknowledged (%s); sending again", type(e).__name__)
                        await self._stop(producer)
                        await asyncio.sleep(0.5)
                        producer = await self._connect()
                self.sent += 1
        finally:
            await self._stop(producer)

    async def _connect(self) -> AIOKafkaProducer:
        while True:
            producer = self._producer()
            try:
                await asyncio.wait_for(producer.start(), timeout=10)
                return producer
            except Exception:  # broker not back yet
                await self._stop(producer)
                await asyncio.sleep(0.5)

    @staticmethod
    async def _stop(producer: AIOKafkaProducer) -> None:
        try:
            await asyncio.wait_for(producer.stop(), timeout=10)
        except Exception:  # a producer that never connected has nothing to flush
            pass
