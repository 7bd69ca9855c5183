"""Property 2b (the running suite, every service its own process): a hypothesis-built corpus of
invalid records, with odd headers and keys, on every public topic a service reads from other systems,
then valid canaries. Every invalid record is on the topic's dead-letter topic with a reason,
every canary takes effect (a customer in every store, a legal hold, an access request answered
by every participant) and every service is still running and ready.

Only invalid records go to these shared topics: a valid random task or erasure could touch a
concurrently running suite's data. consent.events.v1 and registry.events.v1 are written by the
suite itself (compacted or kept 30 days: a corpus there would be replayed to every new reader);
their readers use the same consumer, fuzzed with every header and value in test_consumer_fuzz."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from fuzz.strategies import HOSTILE_HEADERS, Record, bad_headers, draw_corpus, hostile_key, invalid_record_values
from hypothesis import strategies as st
from suite import Suite, installed

from lampo.contracts.catalog import (
    BILLING_INBOUND,
    CONSENT_INBOUND,
    DSAR_EVENTS,
    DSAR_REQUESTS,
    EVENT_TYPES,
    PRIVACY_ACKS,
    PRIVACY_TASKS,
    RECORDINGS_INBOUND,
    REGISTRY_INBOUND,
    RETENTION_INBOUND,
    dlq_topic,
)
from lampo.contracts.envelope import CONTENT_TYPE, CloudEvent
from lampo.participant import Participant
from lampo.retention.handlers import answers_a_sweep
from lampo.synthetic import new_customer, outcome, processed, seed, submit, submitted
from lampo.testing import BOOTSTRAP, Producer, TopicReader, eventually, header, kafka_options

FUZZED = {
    REGISTRY_INBOUND: ["registry"],
    BILLING_INBOUND: ["billing"],
    RECORDINGS_INBOUND: ["recordings"],
    CONSENT_INBOUND: ["consent"],
    RETENTION_INBOUND: ["retention"],
    DSAR_REQUESTS: ["dsar"],
    PRIVACY_TASKS: ["registry", "billing", "recordings", "consent"],
    PRIVACY_ACKS: ["dsar", "retention"],
}
"""Topic -> the services that read it and must dead-letter what breaks its contract."""


def concerns(reader: str, topic: str, value: bytes) -> bool:
    """Whether ``reader`` must answer the record: every reader of a topic, except that a
    participant passes over a task plainly addressed to another participant, and retention an
    ack plainly answering a request that is not a sweep (not their records to judge; the
    addressee, or the coordinator, dead-letters it)."""
    record = ConsumerRecord(topic, 0, 0, 0, 0, None, value, None, 0, len(value), ())
    if topic == PRIVACY_TASKS:
        return Participant(reader, {}).addressed_here(record)
    if topic == PRIVACY_ACKS and reader == "retention":
        return answers_a_sweep(record)
    return True


def corpus(topic: str) -> list[Record]:
    values = st.sampled_from(sorted(EVENT_TYPES[topic])).flatmap(lambda t: invalid_record_values(topic, t))
    drawn = draw_corpus(st.lists(st.tuples(values, bad_headers), min_size=1, max_size=4), examples=6)
    return drawn + [(b'{"specversion": "1.0"', h) for h in HOSTILE_HEADERS]


async def test_no_invalid_record_stops_a_service(fuzz_suite: Suite) -> None:
    missing = {s for readers in FUZZED.values() for s in readers} - set(installed())
    if missing:
        pytest.skip(f"service(s) not installed in this checkout: {', '.join(sorted(missing))}")
    urls = fuzz_suite.urls
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, max_request_size=4 * 1024 * 1024, **kafka_options())
    sent: dict[tuple[str, int, int], set[str]] = {}
    await producer.start()
    try:
        async with TopicReader(*(dlq_topic(t) for t in FUZZED)) as dead:
            for topic, readers in FUZZED.items():
                for i, (value, headers) in enumerate(corpus(topic)):
                    meta = await producer.send_and_wait(
                        topic,
                        value,
                        key=hostile_key(i),
                        headers=[("content-type", CONTENT_TYPE.encode()), *headers],
                    )
                    sent[(topic, meta.partition, meta.offset)] = {f"{r}:" for r in readers if concerns(r, topic, value)}

            await canaries_take_effect(urls)

            def copies() -> dict[tuple[str, int, int], set[str]]:
                found: dict[tuple[str, int, int], set[str]] = {}
                for r in dead.records:
                    origin = (
                        header(r, "error.topic") or "",
                        int(header(r, "error.partition") or -1),
                        int(header(r, "error.offset") or -1),
                    )
                    if origin in sent and header(r, "error.reason") and header(r, "error.detail"):
                        found.setdefault(origin, set()).add((header(r, "error.consumer") or "").split(":")[0] + ":")
                return found

            async def all_dead_lettered() -> bool:
                await dead.quiet(0.5)
                found = copies()
                return all(readers <= found.get(origin, set()) for origin, readers in sent.items())

            try:
                await eventually(all_dead_lettered, timeout=120, interval=0.1)
            except AssertionError:
                found = copies()
                missing = sorted({(o[0], r) for o, readers in sent.items() for r in readers - found.get(o, set())})
                raise AssertionError(f"not dead-lettered within 120 s (topic, reader): {missing}") from None
    finally:
        await producer.stop()

    async with httpx.AsyncClient() as client:
        for name, service in fuzz_suite.services.items():
            assert service.process is not None and service.process.returncode is None, f"{name} exited"
            assert (await client.get(f"{service.url}/health/ready", timeout=5)).status_code == 200, name


async def canaries_take_effect(urls: dict[str, str]) -> None:
    """Valid events after the corpus: a customer in every store, a legal hold, an access
    request that goes through privacy.tasks.v1 and privacy.acks.v1 to completion."""
    customer = new_customer()
    await seed(urls, customer)

    holds_before = await processed(urls["retention"], RETENTION_INBOUND)
    async with Producer() as court:
        await court.send(
            RETENTION_INBOUND,
            f"fuzz-{uuid.uuid4().hex[:8]}",
            CloudEvent.new(
                "legal_hold.placed",
                "urn:system:legal",
                {
                    "hold_id": f"HOLD-{uuid.uuid4().hex[:8]}",
                    "customer_number": f"fuzz-{uuid.uuid4().hex[:8]}",
                    "categories": [],
                    "case_reference": "R 26/0000",
                    "authority": "Jyväskylän käräjäoikeus",
                    "placed_at": datetime.now(UTC),
                },
            ),
        )

    async def hold_applied() -> bool:
        return await processed(urls["retention"], RETENTION_INBOUND) > holds_before

    await eventually(hold_applied, timeout=30, interval=0.2)

    async with TopicReader(DSAR_EVENTS) as events:
        request_id = await submit(submitted("access", customer.number))
        completed = await outcome(events, request_id, "dsar.completed", timeout=150)
    assert completed["data"]["status"] == "completed"
    assert {"registry", "billing", "recordings", "consent"} <= set(completed["data"]["results"])
