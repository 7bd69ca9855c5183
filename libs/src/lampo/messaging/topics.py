"""Every topic of the suite, declared once, and their provisioning.

Inbound topics and dead-letter topics carry personal data in clear, and an erasure cannot reach a
record in Kafka: they keep records only as long as recovery needs them (``INBOUND_HOURS``,
``DEAD_LETTER_HOURS``, reasons below and in ``lampo topics list``). Change-notice topics carry
pseudonymous ids only. Topics are created here, never by clients
(``auto.create.topics.enable=false`` on the broker).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

DAY_MS = 24 * 60 * 60 * 1000
HOUR_MS = 60 * 60 * 1000

# A consumer outage is seen at once (/health/ready, consumer lag on /metrics) and mended within a
# working day; 24 hours of records lets the consumer replay what it missed. A longer outage is
# recovered by re-sending from the source systems, which hold the master data anyway.
INBOUND_HOURS = 24
INBOUND_REASON = "replay after a consumer outage (seen at once, mended within a day); then resend from the source"
# A rejected record waits for an operator to look at it on a working day: 72 hours keeps a record
# rejected on a Friday evening until Monday morning. Fixed records are re-sent from the source.
DEAD_LETTER_HOURS = 72
DEAD_LETTER_REASON = "an operator looks at it on a working day (Friday evening to Monday morning)"
# Partitions of an inbound topic: the most instances of one consumer group that share its work
# (``make up REPLICAS=n``); a partition is read by one instance of a group at a time.
INBOUND_PARTITIONS = 6


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 3
    retention_days: int | None = 7
    compact: bool = False
    # Overrides retention_days when set (the personal-data topics, kept for hours).
    retention_hours: int | None = None
    # Why this long: shown by ``lampo topics list``.
    retention_reason: str = ""
    public: bool = True
    personal_data: bool = False
    purpose: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def retention_ms(self) -> int:
        if self.retention_hours is not None:
            return self.retention_hours * HOUR_MS
        return -1 if self.retention_days is None else self.retention_days * DAY_MS

    def retention_text(self) -> str:
        if self.retention_hours is not None:
            return f"{self.retention_hours} h"
        return "forever" if self.retention_days is None else f"{self.retention_days} d"

    def configs(self) -> dict[str, str]:
        configs = {"cleanup.policy": "compact" if self.compact else "delete"}
        configs["retention.ms"] = str(self.retention_ms)
        # CloudEvents with base64 audio chunks (700 KB of audio) exceed the 1 MB default.
        configs["max.message.bytes"] = "2097152"
        configs.update(self.extra)
        return configs


def dlq(name: str) -> str:
    return f"{name}.dlq"


def _inbound(name: str, purpose: str) -> TopicSpec:
    return TopicSpec(
        name,
        partitions=INBOUND_PARTITIONS,
        personal_data=True,
        purpose=purpose,
        retention_hours=INBOUND_HOURS,
        retention_reason=INBOUND_REASON,
    )


def consumer_group_for(base: str, topic: str) -> str:
    """Each consumer of a service has a group of its own (``<base>.<topic>``): a service's
    consumers of different topics then never rebalance each other (aiokafka rebalances
    eagerly, and a rebalance redelivers the batch in flight)."""
    return f"{base}.{topic}"


_BASE: list[TopicSpec] = [
    _inbound("registry.inbound.v1", "customer data from company systems"),
    TopicSpec("registry.events.v1", retention_days=30, purpose="change notices, pseudonymous"),
    _inbound("billing.inbound.v1", "invoices, payments, collection, credit checks"),
    _inbound("recordings.inbound.v1", "call recordings and archived e-mails"),
    _inbound("consent.inbound.v1", "consents, withdrawals, objections"),
    TopicSpec(
        "consent.events.v1",
        retention_days=None,
        compact=True,
        purpose="current consent state, compacted so a new reader gets all of it",
    ),
    _inbound("retention.inbound.v1", "legal holds from authorities' cases"),
    _inbound("dsar.requests.v1", "data subject requests"),
    TopicSpec("dsar.events.v1", retention_days=30, purpose="request lifecycle, pseudonymous"),
    TopicSpec("privacy.tasks.v1", purpose="participant tasks, pseudonymous"),
    TopicSpec("privacy.acks.v1", purpose="participant answers; access results sealed per request"),
]

# Internal topics: the project's own, pseudonymous ids only, documented in the AsyncAPI files.
INTERNAL: list[TopicSpec] = [
    TopicSpec(
        "retention.holds.v1",
        retention_days=None,
        compact=True,
        public=False,
        purpose="current legal holds per customer number (type legal_hold.state), compacted; read by dsar",
    ),
    TopicSpec(
        "staff.audit-heads.v1",
        partitions=1,
        retention_days=None,
        compact=True,
        public=False,
        purpose="the staff audit chain's head (seq and MAC, type staff.audit_head), compacted; read by audit verify",
        retention_reason="the last head of each chain is what verify compares against",
    ),
]

# Every public topic gets a dead-letter topic, kept for an operator's working day.
TOPICS: list[TopicSpec] = (
    _BASE
    + INTERNAL
    + [
        TopicSpec(
            dlq(t.name),
            partitions=1,
            retention_hours=DEAD_LETTER_HOURS,
            retention_reason=DEAD_LETTER_REASON,
            personal_data=True,
            purpose=f"rejected records of {t.name}",
        )
        for t in _BASE
    ]
)

TOPIC_NAMES = frozenset(t.name for t in TOPICS)
STAFF_AUDIT_HEADS = "staff.audit-heads.v1"


async def provision(
    bootstrap: str,
    *,
    replication_factor: int = 1,
    specs: list[TopicSpec] | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Create missing topics and bring the configs of existing ones to the declared values, and
    their partitions up to the declared count (never down: Kafka cannot remove partitions).
    Returns {topic: "created" | "updated" | "partitions raised"}; safe to run any number of times.

    Raising the count moves keys to other partitions: records of a key written before it may be
    read after later ones of that key (the inbound topics are raised once, while their producers
    are quiet). A compacted topic is never raised here: its old values would outlive new ones.
    ``client_options``: TLS/SASL for the admin client (``ServiceSettings.kafka_client_options()``)."""
    specs = TOPICS if specs is None else specs
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(client_options or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        outcome: dict[str, str] = {}
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        s.name,
                        num_partitions=s.partitions,
                        replication_factor=replication_factor,
                        topic_configs=s.configs(),
                    )
                    for s in missing
                ]
            )
            outcome.update({s.name: "created" for s in missing})
            # Creation is asynchronous on the controller: return only once every new topic is
            # in the metadata, so a consumer or producer started right after finds it.
            for _ in range(100):
                if {s.name for s in missing} <= set(await admin.list_topics()):
                    break
                await asyncio.sleep(0.1)
        present = [s for s in specs if s.name in existing]
        if present:
            await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, s.name, configs=s.configs()) for s in present]
            )
            outcome.update({s.name: "updated" for s in present})
            counts = {
                str(t["topic"]): len(t["partitions"]) for t in await admin.describe_topics([s.name for s in present])
            }
            fewer = {
                s.name: NewPartitions(s.partitions) for s in present if not s.compact and counts[s.name] < s.partitions
            }
            if fewer:
                answer = await admin.create_partitions(fewer)
                failed = [(t[0], t[2]) for t in answer.topic_errors if t[1] != 0]
                if failed:
                    raise RuntimeError(f"could not raise the partitions of {failed}")
                outcome.update({name: "partitions raised" for name in fewer})
                for _ in range(100):  # as above: once the metadata shows them
                    described = await admin.describe_topics(list(fewer))
                    if all(len(t["partitions"]) >= fewer[str(t["topic"])].total_count for t in described):
                        break
                    await asyncio.sleep(0.1)
        return outcome
    finally:
        await admin.close()
