"""Personal data in Kafka is kept only as long as recovery needs it (issue 16): inbound topics
24 hours, dead-letter topics 72 hours, each with its reason in the catalogue."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from lampo.messaging.topics import HOUR_MS, TOPICS, provision
from lampo.testing import BOOTSTRAP, unique


def test_no_topic_keeps_personal_data_in_clear_for_days() -> None:
    personal = [t for t in TOPICS if t.personal_data]
    assert personal and all(0 < t.retention_ms <= 72 * HOUR_MS for t in personal), [
        (t.name, t.retention_text()) for t in personal if t.retention_ms > 72 * HOUR_MS or t.retention_ms < 0
    ]
    assert all(t.retention_reason for t in personal)
    by_name = {t.name: t for t in TOPICS}
    assert by_name["registry.inbound.v1"].retention_ms == 24 * HOUR_MS
    assert by_name["registry.inbound.v1.dlq"].retention_ms == 72 * HOUR_MS
    heads = by_name["staff.audit-heads.v1"]
    assert heads.compact and not heads.public and heads.partitions == 1


def test_topics_list_shows_retention_and_why() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPO_")} | {"COLUMNS": "400"}
    out = subprocess.run(
        [str(Path(sys.executable).with_name("lampo")), "topics", "list"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    ).stdout  # fmt: skip
    line = next(row for row in out.splitlines() if "registry.inbound.v1 " in row)
    assert "24 h" in line and "consumer outage" in line
    dead = next(row for row in out.splitlines() if "registry.inbound.v1.dlq" in row)
    assert "72 h" in dead and "working day" in dead


async def test_the_broker_gets_the_declared_retention() -> None:
    spec = next(t for t in TOPICS if t.name == "registry.inbound.v1")
    copy = dataclasses.replace(spec, name=unique("test.inbound"), partitions=1)
    await provision(BOOTSTRAP, specs=[copy])
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, copy.name)])
        entries = {e[0]: e[1] for e in described[0].resources[0][4]}
        assert entries["retention.ms"] == str(24 * HOUR_MS)
    finally:
        await admin.delete_topics([copy.name])
        await admin.close()


def test_inbound_topics_have_partitions_for_several_instances() -> None:
    inbound = [t for t in TOPICS if t.personal_data and not t.name.endswith(".dlq")]
    assert {t.name for t in inbound} >= {"registry.inbound.v1", "consent.inbound.v1", "dsar.requests.v1"}
    assert all(t.partitions >= 6 for t in inbound), [(t.name, t.partitions) for t in inbound]


async def test_provision_raises_the_partitions_of_an_existing_topic_but_not_a_compacted_one() -> None:
    spec = next(t for t in TOPICS if t.name == "registry.inbound.v1")
    topic = dataclasses.replace(spec, name=unique("test.inbound"), partitions=3)
    compacted = dataclasses.replace(
        next(t for t in TOPICS if t.name == "consent.events.v1"), name=unique("test.compacted"), partitions=3
    )
    assert await provision(BOOTSTRAP, specs=[topic, compacted]) == {topic.name: "created", compacted.name: "created"}
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        raised = [dataclasses.replace(topic, partitions=6), dataclasses.replace(compacted, partitions=6)]
        assert await provision(BOOTSTRAP, specs=raised) == {
            topic.name: "partitions raised",
            compacted.name: "updated",
        }
        counts = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics([topic.name, compacted.name])}
        assert counts == {topic.name: 6, compacted.name: 3}
        assert await provision(BOOTSTRAP, specs=raised) == {topic.name: "updated", compacted.name: "updated"}
    finally:
        await admin.delete_topics([topic.name, compacted.name])
        await admin.close()
