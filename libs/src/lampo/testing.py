"""Helpers for tests against the real broker and database (used by every service's tests).

They talk to Kafka and PostgreSQL exactly as another company system would: records in, records
out, rows in the service's own database. Nothing here fakes the broker or the database.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata, RecordMetadata

from lampo.contracts.catalog import PRIVACY_ACKS, PRIVACY_TASKS
from lampo.contracts.categories import Category
from lampo.contracts.envelope import CONTENT_TYPE, CloudEvent
from lampo.contracts.privacy import PrivacyTask, TaskSubject
from lampo.db.pool import server_url_of
from lampo.messaging.topics import consumer_group_for

BOOTSTRAP = os.environ.get("LAMPO_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def kafka_options() -> dict[str, Any]:
    """TLS/SASL options for the test clients, from the services' own LAMPO_KAFKA_* settings
    (empty for the local PLAINTEXT broker)."""
    from lampo.settings import ServiceSettings

    return ServiceSettings(master_key=None).kafka_client_options()  # the key is not needed here


PG_URL = os.environ.get("LAMPO_PG_URL", "postgresql://lampo:lampo@127.0.0.1:5432/postgres")


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(server_url_of(PG_URL))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def fast_forward_group(group_id: str, topics: Sequence[str]) -> None:
    """Commit the offsets of a service's consumer groups (base ``group_id``, one group per
    topic) at the current end of each topic, so a service started with that base reads only
    what a test publishes from now on, with no start-up race."""
    await asyncio.gather(*(_fast_forward(consumer_group_for(group_id, topic), topic) for topic in topics))


async def _fast_forward(group_id: str, topic: str) -> None:
    topics = [topic]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP, group_id=group_id, enable_auto_commit=False, **kafka_options()
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(await _partitions(consumer, t))]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in ends.items()})
    finally:
        await consumer.stop()


async def committed_past(records: dict[str, RecordMetadata], *, timeout: float = 60.0) -> None:
    """Waits until each consumer group has committed past its record (group -> where the record
    went): it has been read, by whichever instance of the group holds the partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, **kafka_options())
    await admin.start()
    try:

        async def all_past() -> bool:
            for group, record in records.items():
                tp = TopicPartition(record.topic, record.partition)
                offsets = await admin.list_consumer_group_offsets(group, partitions=[tp])
                if tp not in offsets or offsets[tp].offset <= record.offset:
                    return False
            return True

        await eventually(all_past, timeout=timeout, interval=0.2)
    finally:
        await admin.close()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The topic's partitions, refreshing metadata until they are known (a topic created a
    moment ago may not be in the first answer)."""
    for _ in range(50):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return set(parts)
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise AssertionError(f"topic {topic} has no partitions (is it provisioned?)")


# --- Signing (lampo.signing) ----------------------------------------------------------------
#
# Tests give each signer a fixed key derived from its name, so a test and the services it starts
# agree without passing keys around. For tests only: anyone can derive these keys.
TEST_SIGNERS = ("coordinator", "staff", "retention", "registry", "billing", "recordings", "consent")


def signing_key_for(name: str) -> str:
    """The (public, test-only) private signing key of ``name``, base64."""
    return base64.b64encode(hashlib.sha256(f"lampo-test-signing-key:{name}".encode()).digest()).decode()


def trusted_keys_for(*extra: str) -> dict[str, list[str]]:
    """LAMPO_TRUSTED_KEYS for tests: the public key of every test signer (and of ``extra`` names)."""
    from lampo.signing import private_key, public_of

    return {name: [public_of(private_key(signing_key_for(name)))] for name in (*TEST_SIGNERS, *extra)}


def signing_settings(name: str, *extra: str) -> dict[str, Any]:
    """Settings keywords of a service under test that signs as ``name`` and trusts the test signers."""
    return {"signing_key": signing_key_for(name), "trusted_keys": trusted_keys_for(*extra)}


def signed_headers(value: bytes, signer: str, *, key_of: str | None = None) -> dict[str, str]:
    """``signature`` and ``signer`` headers of a record value, signed by ``signer``'s test key (or,
    to forge, with ``key_of``'s key under ``signer``'s name)."""
    from lampo.signing import SIGNATURE, SIGNER, private_key

    key = private_key(signing_key_for(key_of or signer))
    return {SIGNATURE: base64.b64encode(key.sign(value)).decode(), SIGNER: signer}


class Producer:
    """Publishes CloudEvents the way another company system does; ``send(..., signer=name)`` signs
    the record as ``name`` (a test key, see ``signing_key_for``)."""

    def __init__(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=BOOTSTRAP, enable_idempotence=True, max_request_size=4 * 1024 * 1024, **kafka_options()
        )

    async def __aenter__(self) -> Producer:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def send(
        self,
        topic: str,
        key: str | None,
        value: CloudEvent | bytes,
        *,
        traceparent: str | None = None,
        headers: dict[str, str] | None = None,
        signer: str | None = None,
    ) -> RecordMetadata:
        all_headers = {"content-type": CONTENT_TYPE, **(headers or {})}
        if traceparent:
            all_headers["traceparent"] = traceparent
        payload = value.to_bytes() if isinstance(value, CloudEvent) else value
        if signer is not None:
            all_headers |= signed_headers(payload, signer)
        return await self._producer.send_and_wait(
            topic,
            payload,
            key=key.encode() if key is not None else None,
            headers=[(k, v.encode()) for k, v in all_headers.items()],
        )

    async def send_many(
        self, topic: str, items: Sequence[tuple[str | None, bytes]], *, signer: str | None = None
    ) -> None:
        def headers(value: bytes) -> list[tuple[str, bytes]]:
            extra = signed_headers(value, signer) if signer is not None else {}
            return [(k, v.encode()) for k, v in {"content-type": CONTENT_TYPE, **extra}.items()]

        futures = [
            await self._producer.send(topic, v, key=k.encode() if k else None, headers=headers(v)) for k, v in items
        ]
        await asyncio.gather(*futures)


class TopicReader:
    """Reads a topic from the moment it was opened (its current end), without a group."""

    def __init__(self, *topics: str) -> None:
        self.topics = topics
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, group_id=None, **kafka_options()
        )
        self.records: list[ConsumerRecord[Any, Any]] = []

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        partitions = []
        for topic in self.topics:
            partitions += [TopicPartition(topic, p) for p in sorted(await _partitions(self._consumer, topic))]
        self._consumer.assign(partitions)
        ends = await self._consumer.end_offsets(partitions)
        for tp, offset in ends.items():
            self._consumer.seek(tp, offset)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def wait_for(
        self, predicate: Callable[[ConsumerRecord[Any, Any]], bool], *, count: int = 1, timeout: float = 30.0
    ) -> list[ConsumerRecord[Any, Any]]:
        """Records matching ``predicate``, waiting until ``count`` of them arrived."""
        deadline = time.monotonic() + timeout
        while True:
            matched = [r for r in self.records if predicate(r)]
            if len(matched) >= count:
                return matched
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"only {len(matched)} of {count} expected records on {self.topics} within {timeout}s"
                )
            batch = await self._consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for records in batch.values():
                self.records.extend(records)

    async def quiet(self, seconds: float) -> list[ConsumerRecord[Any, Any]]:
        """Everything that arrives within ``seconds``."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            batch = await self._consumer.getmany(timeout_ms=int(remaining * 1000))
            for records in batch.values():
                self.records.extend(records)
        return self.records


def header(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


@asynccontextmanager
async def running(app: Any) -> AsyncIterator[None]:
    """Start a service's FastStream app in this event loop (consumers, relay), stop it after."""
    await app.start()
    try:
        yield
    finally:
        await app.stop()


async def eventually(check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Await ``check()`` until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


_CHECK = "0123456789ABCDEFHJKLMNPRSTUVWXY"


def metric_sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text (a /metrics answer), matching the given labels
    (others ignored); None when there is none."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(4))
    return None


def synthetic_identity_code(n: int) -> str:
    """A valid personal identity code in the 900-999 test range (never issued to a person),
    different for each n < 36,500."""
    from datetime import date, timedelta

    born = date(1950, 1, 1) + timedelta(days=(n // 100) % 20000)
    individual = 900 + n % 100
    digits = f"{born:%d%m%y}{individual:03d}"
    sign = "-" if born.year < 2000 else "A"
    return f"{born:%d%m%y}{sign}{individual:03d}{_CHECK[int(digits) % 31]}"


def customer_upserted(
    customer_number: str,
    n: int = 0,
    *,
    email: str | None = None,
    source: str = "urn:system:crm",
    time: Any = None,
    event_id: str | None = None,
) -> CloudEvent:
    """A synthetic person for tests and the demo: identity code in the test range, example.fi mail."""
    data = {
        "customer_number": customer_number,
        "kind": "person",
        "source": {"system": "crm", "origin": "subject"},
        "legal_basis": "contract",
        "person": {
            "first_names": f"Testi{n}",
            "last_name": f"Asiakas{n}",
            "birth_date": None,
            "personal_identity_code": synthetic_identity_code(n),
            "mother_tongue": "fi",
            "gender": "2",
        },
        "organisation": None,
        "contact": {
            "street": f"Testikatu {n % 200 + 1}",
            "postal_code": "40950",
            "city": "Muurame",
            "country": "FI",
            "phone": f"+35840{n % 10_000_000:07d}",
            "email": email or f"asiakas{n}@example.fi",
        },
        "contact_person_for": None,
        "metering_points": [f"MUL-{n:06d}"],
        "account": {"username": f"asiakas{n}"},
    }
    return CloudEvent.new("customer.upserted", source, data, id=event_id, time=time)


async def find_in_database(database: str, needles: Sequence[str]) -> list[tuple[str, str, str]]:
    """Every (table, column, needle) where a needle occurs in a text, JSON or bytea column of any
    table of the database: the scan that shows an erasure left nothing behind."""
    conn = await asyncpg.connect(server_url_of(PG_URL, database))
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea')"
        )
        found: list[tuple[str, str, str]] = []
        for col in columns:
            table, column = col["table_name"], col["column_name"]
            for needle in needles:
                if col["data_type"] == "bytea":
                    sql = f'SELECT 1 FROM "{table}" WHERE position(convert_to($1, \'UTF8\') in "{column}") > 0 LIMIT 1'
                else:
                    sql = f'SELECT 1 FROM "{table}" WHERE strpos("{column}"::text, $1) > 0 LIMIT 1'
                if await conn.fetchval(sql, needle):
                    found.append((table, column, needle))
        return found
    finally:
        await conn.close()


def find_in_records(records: Sequence[ConsumerRecord[Any, Any]], needles: Sequence[str]) -> list[tuple[str, str]]:
    """Every (topic, needle) where a needle occurs in a record's key, value or headers."""
    found: list[tuple[str, str]] = []
    for record in records:
        blob = (record.key or b"") + (record.value or b"") + b"".join(v for _, v in record.headers or ())
        text = blob.decode(errors="replace")
        found += [(record.topic, n) for n in needles if n in text]
    return found


async def scan_tables(conn: asyncpg.Connection, needles: Sequence[str | bytes]) -> list[str]:
    """Dump every text, bytea and jsonb column of every table and return ``table.column`` for
    each column in which one of ``needles`` appears (text needles also searched base64-encoded).
    Stricter than :func:`find_in_database`: byte needles, base64 forms, whole-row blobs."""
    raw = [n.encode() if isinstance(n, str) else n for n in needles]
    raw += [base64.b64encode(n) for n in raw if len(n) >= 6]
    columns = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns c"
        " JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
        " AND c.data_type IN ('text', 'bytea', 'jsonb', 'character varying', 'json')"
    )
    hits = []
    for col in columns:
        rows = await conn.fetch(
            f'SELECT "{col["column_name"]}"::text AS v, "{col["column_name"]}" AS raw FROM "{col["table_name"]}"'
        )
        for row in rows:
            value = row["raw"]
            blob = bytes(value) if isinstance(value, bytes | bytearray | memoryview) else (row["v"] or "").encode()
            if any(n in blob for n in raw):
                hits.append(f"{col['table_name']}.{col['column_name']}")
                break
    return hits


def privacy_task(
    participant: str, kind: str, customer: str, *, task_id: str | None = None, result_key: str | None = None
) -> PrivacyTask:
    """A privacy task of ``kind`` for one customer number, over every category, due in 30 days."""
    return PrivacyTask(
        request_id=unique("req"),
        task_id=task_id or unique("task"),
        participant=participant,
        kind=kind,
        subject=TaskSubject(subject_id=unique("subj"), customer_numbers=[customer]),
        categories=list(Category),
        attempt=1,
        deadline=datetime.now(UTC) + timedelta(days=30),
        result_key=result_key,
    )


async def collect_acks(acks: TopicReader, task_id: str) -> list[dict[str, Any]]:
    """Every ack of a task (their data) until its result is whole: one ack, or parts 0..n-1 of
    a result sent in parts (the last part names n)."""
    count = 1
    while True:
        records = await acks.wait_for(lambda r: json.loads(r.value)["data"]["task_id"] == task_id, count=count)
        data = [json.loads(r.value)["data"] for r in records]
        total = next((d["result_parts"] for d in data if d.get("result_parts")), None)
        if data[0].get("result_part") is None or (total and len({d["result_part"] for d in data}) >= total):
            return data
        count = len(records) + 1


async def run_privacy_task(t: PrivacyTask, *, times: int = 1) -> list[dict[str, Any]]:
    """Publish ``t`` as a privacy.task ``times`` times, signed as the coordinator, and return
    the data of the first ``times`` acks for its task id."""
    async with TopicReader(PRIVACY_ACKS) as acks, Producer() as producer:
        for _ in range(times):
            task = CloudEvent.new("privacy.task", "urn:lampo:dsar", t)
            await producer.send(PRIVACY_TASKS, t.request_id, task, signer="coordinator")
        records = await acks.wait_for(lambda r: json.loads(r.value)["data"]["task_id"] == t.task_id, count=times)
    return [json.loads(r.value)["data"] for r in records[:times]]
