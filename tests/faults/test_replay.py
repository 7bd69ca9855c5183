"""Every topic replayed from offset 0: each service restarted with consumer groups that have no
committed offsets (so they start at the beginning of every topic they read) re-reads everything
the fault run published, and changes nothing: each database is identical, row for row, before
and after, and every re-read event was counted as a duplicate. Runs last in the fault session
(file order), so it replays what every other fault test published."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from conftest import BrokerHistory
from faultkit import header, query, read_topic
from suite import Suite

from lampo.contracts.catalog import REGISTRY_INBOUND
from lampo.messaging.topics import dlq
from lampo.testing import BOOTSTRAP, eventually, kafka_options, unique
from lampo.testing import _partitions as topic_partitions


async def snapshot(db: str) -> dict[str, tuple[int, str]]:
    """Row count and a digest of every row of every table of ``db``."""
    tables = await query(db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    state = {}
    for t in tables:
        name = t["tablename"]
        [row] = await query(
            db,
            f"SELECT count(*) AS n, md5(coalesce(string_agg(r::text, chr(10) ORDER BY r::text), '')) AS d FROM \"{name}\" r",
        )
        state[name] = (row["n"], row["d"])
    return state


async def caught_up(base: str) -> bool:
    """Every consumer group of ``base`` has committed the current end of its topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, **kafka_options())
    await admin.start()
    try:
        groups = [g[0] for g in await admin.list_consumer_groups() if g[0].startswith(f"{base}.")]
        if not groups:
            return True  # a service that consumes nothing (staff); the others' groups joined before ready
        probe = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, **kafka_options())
        await probe.start()
        try:
            for group in groups:
                topic = group[len(base) + 1 :]
                partitions = [TopicPartition(topic, p) for p in sorted(await topic_partitions(probe, topic))]
                ends = await probe.end_offsets(partitions)
                committed = await admin.list_consumer_group_offsets(group)
                for tp, end in ends.items():
                    if end > 0 and (tp not in committed or committed[tp].offset < end):
                        return False
            return True
        finally:
            await probe.stop()
    finally:
        await admin.close()


async def duplicates(url: str) -> int:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{url}/metrics", timeout=5)).text
    return sum(int(float(v)) for v in re.findall(r"^lampo_consumer_duplicates_total\{[^}]*\} (\S+)$", text, re.M))


@pytest.mark.timeout(1500)  # re-reads (and re-dead-letters) everything the fault run published
async def test_every_topic_replayed_from_offset_0_changes_no_database(
    suite: Suite, broker_history: BrokerHistory
) -> None:
    if not broker_history.fresh:
        pytest.skip(
            "the broker held records from before this session, whose effects are in no database of it: "
            "`make test-faults` starts a fresh broker"
        )
    names = list(suite.services)
    await asyncio.sleep(3)  # let the last flows settle
    await asyncio.gather(*(suite[n].stop() for n in names))
    before = {n: await snapshot(suite[n].env["LAMPO_DATABASE"]) for n in names}
    handled = {
        n: (await query(suite[n].env["LAMPO_DATABASE"], "SELECT count(*) AS n FROM inbox"))[0]["n"] for n in names
    }
    assert handled["registry"] > 0, "nothing to replay: the fault run published nothing"

    bases = {}
    for n in names:
        bases[n] = unique(f"replay-{n}")  # no offsets committed: they start at offset 0
        suite[n].env["LAMPO_CONSUMER_GROUP"] = bases[n]
    await asyncio.gather(*(suite[n].start() for n in names))
    for n in names:
        await eventually(lambda b=bases[n]: caught_up(b), timeout=1200, interval=3)
        # every event handled before was read again and recognised as a duplicate
        assert await duplicates(suite[n].url) >= handled[n], n
    await asyncio.sleep(3)
    await asyncio.gather(*(suite[n].stop() for n in names))
    after = {n: await snapshot(suite[n].env["LAMPO_DATABASE"]) for n in names}
    await asyncio.gather(*(suite[n].start() for n in names))

    # a replay dead-letters the invalid records again: each copy names its source record, so the
    # copies of one record (same topic, partition, offset) are recognisably the same, same reason
    copies: dict[tuple[str | None, ...], set[tuple[bytes, str | None]]] = defaultdict(set)
    for record in await read_topic(dlq(REGISTRY_INBOUND)):
        source = tuple(header(record, h) for h in ("error.topic", "error.partition", "error.offset"))
        copies[source].add((record.value, header(record, "error.reason")))
    assert copies and all(len(c) == 1 for c in copies.values())

    for n in names:
        changed = {
            t: (before[n].get(t), after[n].get(t))
            for t in before[n].keys() | after[n].keys()
            if before[n].get(t) != after[n].get(t)
        }
        assert changed == {}, f"{n}: replay changed {changed}"
