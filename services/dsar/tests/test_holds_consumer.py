"""The coordinator's copy of retention.holds.v1, fed records a broken writer could produce (a key
that is not UTF-8, on a state and on a tombstone; an unreadable value; a key that is not the
customer number its state names). Each is skipped and
counted, and the records after it still apply. The records are handed to the consumer directly,
not published: the topic is compacted, so junk there would be replayed to every later reader."""

from __future__ import annotations

import re
import uuid
from typing import Any

from aiokafka.structs import ConsumerRecord
from dsar_support import dsar_service, legal_hold_state

from lampo.contracts.envelope import CloudEvent
from lampo.dsar.handlers import HoldsConsumer
from lampo.dsar.store import DsarStore

TOPIC = "retention.holds.v1"


def record(offset: int, key: bytes | None, value: bytes | None) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(TOPIC, 0, offset, 0, 0, key, value, None, len(key or b""), len(value or b""), ())


def hold_state(customer: str) -> bytes:
    return CloudEvent.new("legal_hold.state", "urn:lampo:retention", legal_hold_state(customer)).to_bytes()


async def test_records_a_broken_writer_could_produce_are_skipped_and_the_rest_applied(registry) -> None:
    customer = f"h{uuid.uuid4().hex[:8]}"
    async with dsar_service(registry) as env:
        holds = HoldsConsumer(env.dsar.runtime)  # not subscribed: counts only what this test hands it
        async with env.pool.acquire() as conn, conn.transaction():
            store = DsarStore(conn)
            await holds._apply(store, record(1, b"\xff\xfe", hold_state(customer)))
            await holds._apply(store, record(2, b"\xff\xfe", None))  # a tombstone for no readable key
            await holds._apply(store, record(3, customer.encode(), b"{not json"))
            await holds._apply(store, record(4, b"someone-else", hold_state(customer)))  # key is not its customer
            await holds._apply(store, record(5, customer.encode(), hold_state(customer)))
            held = await conn.fetchval("SELECT holds FROM legal_holds WHERE customer_number = $1", customer)
    assert (holds.skipped, holds.applied) == (4, 1)
    assert [h["case_reference"] for h in held] == ["R 26/1234"]


async def test_the_holds_copy_is_on_metrics(registry) -> None:
    async with dsar_service(registry) as env:
        env.dsar.holds.skipped += 1  # as a skipped record counts
        text = await env.dsar.runtime.metrics.render()
    assert re.search(r'^lampo_dsar_holds_records_total\{outcome="skipped"\} [1-9]', text, re.M)
    assert re.search(r'^lampo_dsar_holds_records_total\{outcome="applied"\} \d+', text, re.M)
