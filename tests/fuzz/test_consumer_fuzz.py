"""Property 2a (real broker and database, one consumer in this process): a hypothesis-built
corpus of record values and Kafka headers, meant as registry.inbound.v1 events, published to a
topic of this test's own with plain and hostile keys, then a valid canary. Every record that
breaks the contract lands on the dead-letter topic with its reason, no valid one fails (whatever
its key or headers), the canary takes effect and the consumer keeps running.

The topic is private so that a record that would stop a consumer stops only this one, never a
service of a concurrently running suite; tests/fuzz/test_services_fuzz.py then sends a corpus to
the running services' own topics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from fuzz.strategies import HOSTILE_HEADERS, Record, any_record_values, bad_headers, draw_corpus, hostile_key
from hypothesis import strategies as st

from lampo.contracts.catalog import EVENT_TYPES, REGISTRY_INBOUND, ParsedEvent, parse
from lampo.contracts.envelope import CONTENT_TYPE
from lampo.contracts.errors import ContractViolation
from lampo.crypto import new_master_key
from lampo.messaging.consumer import ConsumerOptions, Incoming, ReliableConsumer, per_event
from lampo.messaging.topics import TopicSpec, dlq, provision
from lampo.service import Runtime
from lampo.settings import ServiceSettings
from lampo.testing import (
    BOOTSTRAP,
    TopicReader,
    customer_upserted,
    drop_database,
    eventually,
    fast_forward_group,
    header,
    kafka_options,
    running,
    unique,
)

TOPIC = "lampo.fuzz.v1"


class FuzzSettings(ServiceSettings):
    service: ClassVar[str] = "fuzz"


def as_registry_inbound(_topic: str, raw: bytes) -> ParsedEvent:
    return parse(REGISTRY_INBOUND, raw)


async def remember(conn: asyncpg.Connection, item: Incoming) -> None:
    # The key is read as handlers read it (retention's span attribute): a hostile key must not fail.
    await conn.execute("INSERT INTO effects (event_id, key_length) VALUES ($1, $2)", item.id, len(item.key or ""))


@pytest.fixture(scope="module")
async def consumer(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ReliableConsumer]:
    await provision(
        BOOTSTRAP, specs=[TopicSpec(TOPIC, partitions=2, public=False), TopicSpec(dlq(TOPIC), partitions=1)]
    )
    migrations = tmp_path_factory.mktemp("fuzz-migrations")
    (migrations / "0001_effects.sql").write_text("CREATE TABLE effects (event_id text NOT NULL, key_length int);")
    settings_ = FuzzSettings(
        database=unique("test_fuzz"), consumer_group=unique("test-fuzz"), master_key=new_master_key()
    )
    await fast_forward_group(settings_.consumer_group or "", [TOPIC])
    runtime = Runtime(settings_, migrations=Path(migrations))
    consumer = runtime.consume(
        TOPIC,
        per_event(remember),
        parser=as_registry_inbound,
        options=ConsumerOptions(max_records=50, retries=1, backoff_s=0.01, infrastructure_backoff_s=0.2),
    )
    async with running(runtime.app):
        yield consumer
    await drop_database(settings_.database or "")


def corpus() -> list[Record]:
    """Drawn records (every registry.inbound.v1 type, valid and mutated, with odd headers) and the
    hostile headers on a valid and an invalid value."""
    values = st.sampled_from(sorted(EVENT_TYPES[REGISTRY_INBOUND])).flatmap(any_record_values)
    drawn = draw_corpus(st.lists(st.tuples(values, bad_headers), min_size=1, max_size=6), examples=15)
    valid = customer_upserted(unique("fuzz"), 3).to_bytes()
    return drawn + [(v, h) for h in HOSTILE_HEADERS for v in (valid, b"{not json")]


def breaks_contract(raw: bytes) -> bool:
    try:
        parse(REGISTRY_INBOUND, raw)
    except ContractViolation:
        return True
    return False


async def test_no_record_or_header_stops_the_consumer(consumer: ReliableConsumer) -> None:
    records = corpus()
    canary = customer_upserted(unique("canary"), 7)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, max_request_size=4 * 1024 * 1024, **kafka_options())
    await producer.start()
    sent: list[tuple[int, int, bool]] = []
    try:
        async with TopicReader(dlq(TOPIC)) as dead:
            for i, (value, headers) in enumerate(records):
                meta = await producer.send_and_wait(
                    TOPIC, value, key=hostile_key(i), headers=[("content-type", CONTENT_TYPE.encode()), *headers]
                )
                sent.append((meta.partition, meta.offset, breaks_contract(value)))
            await producer.send_and_wait(
                TOPIC, canary.to_bytes(), key=b"canary\xff", headers=[("content-type", CONTENT_TYPE.encode())]
            )

            async def canary_applied() -> bool:
                async with consumer._pool().acquire() as conn:
                    return bool(await conn.fetchval("SELECT count(*) FROM effects WHERE event_id = $1", canary.id))

            await eventually(canary_applied, timeout=60, interval=0.2)
            invalid = {(p, o) for p, o, bad in sent if bad}
            dead_records = await dead.wait_for(
                lambda r: (int(header(r, "error.partition") or -1), int(header(r, "error.offset") or -1)) in invalid,
                count=len(invalid),
                timeout=30,
            )
    finally:
        await producer.stop()
    assert {
        (int(header(r, "error.partition") or -1), int(header(r, "error.offset") or -1)) for r in dead_records
    } == invalid
    assert all(header(r, "error.reason") and header(r, "error.detail") for r in dead_records)
    assert consumer.stats.processed >= 1
    assert "processing_failed" not in consumer.stats.dead_lettered  # no valid record failed on its key or headers
