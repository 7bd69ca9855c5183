"""Registry ingest throughput against a plain baseline, on the real broker and database.

    .venv/bin/python bench/ingest/run.py [--events 100000]

1. Publishes N synthetic ``customer.upserted`` events (identity codes in the 900-999 test range,
   @example.fi addresses) to registry.inbound.v1, noting where they start on each partition.
2. Baseline: a plain aiokafka consumer reads exactly those records (batches of 500, offsets
   committed per batch) and writes each with asyncpg ``copy_records_to_table`` into a simple
   table (customer number, event id, event time, the record value). Then the validating
   baseline, issue 17's yardstick: the same, with each record first read through the public
   contract's ``parse`` and its identity code blind-indexed and encrypted (both stored too).
3. The registry (``lampo.registry.app.build``) on a new database and consumer group starting at
   the same offsets, in this process, until its consumer has processed N events: parse and
   validate, inbox, subjects, encrypted sections, blind indexes, outbox notices, one transaction
   per batch.

The rates are measured from the end of the first batch to the last one (consumer group joins and
connection set-up are not ingest), and printed with their ratios (issue 17: at least 0.5 against
the validating baseline, and never under 3,000 events/s; the ratio against the raw one reported).

``--readings MONTHS`` follows each new customer with its monthly ``consumption.reported``
readings (the bulk of a seeded register); the subject keys are in a keys database of their own,
as deployed (``--keys-in-data-database`` for the old set-up). Commits per batch in the registry's
database and its keys database are printed (``pg_stat_database.xact_commit``).

4. Floor, same run: the records' values through the public contract's ``parse`` (the validation
   the issue itself asks for: JSON, schema, identity code, phone, e-mail, postal code) plus the
   identity code's blind index and encryption, no database, no Kafka: CPU per event. Added to the
   baseline's own CPU per event (its process and its database backend), it gives the highest
   ratio any registry could reach on this machine's cores if it did only that, perfectly
   parallel (no other section encrypted, no index or outbox written, no broker CPU counted).
Other suites on the same broker may publish to the topic meanwhile; the registry counts them too,
so the registry's figure is, if anything, slightly low.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from lampo.contracts.catalog import CONSENT_EVENTS, PRIVACY_TASKS, REGISTRY_INBOUND, parse
from lampo.contracts.envelope import CloudEvent
from lampo.crypto import FieldCipher, KeyRing, new_master_key, parse_master_key
from lampo.db.pool import server_url_of
from lampo.messaging.topics import consumer_group_for
from lampo.testing import (
    BOOTSTRAP,
    PG_URL,
    Producer,
    customer_upserted,
    drop_database,
    fast_forward_group,
    running,
    unique,
)

BATCH = 500


async def offsets(consumer: AIOKafkaConsumer, topic: str) -> dict[TopicPartition, int]:
    for _ in range(50):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            break
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    partitions = [TopicPartition(topic, p) for p in sorted(parts or ())]
    ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    return ends


def readings_of(customer: str, n: int, months: int) -> list[bytes]:
    """``months`` monthly ``consumption.reported`` readings of the customer's metering point (as
    ``lampo seed`` sends them: the bulk of a seeded register)."""
    out = []
    for m in range(months):
        year, month = 2023 + m // 12, m % 12 + 1
        start = date(year, month, 1)
        end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        data = {
            "customer_number": customer,
            "metering_point": f"MUL-{n:06d}",
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
            "energy_mwh": f"{1 + (n + m) % 7 / 10:.3f}",
            "annual_forecast_mwh": "14.000",
        }
        event = CloudEvent.new(
            "consumption.reported", "urn:system:metering", data, time=f"{end.isoformat()}T23:00:00+00:00"
        )
        out.append(event.to_bytes())
    return out


async def publish(n: int, months: int = 0) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """``n`` events: ``customer.upserted`` only, or (``months``) each new customer followed by
    ``months`` monthly readings."""
    probe = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    await probe.start()
    try:
        start = await offsets(probe, REGISTRY_INBOUND)
        prefix = uuid.uuid4().hex[:6]
        started = time.perf_counter()
        async with Producer() as producer:
            items: list[tuple[str | None, bytes]] = []
            sent, i = 0, 0
            while sent < n:
                customer = f"bench-{prefix}-{i}"
                values = [customer_upserted(customer, i).to_bytes(), *readings_of(customer, i, months)]
                items += [(customer, value) for value in values[: n - sent]]
                sent += len(values[: n - sent])
                i += 1
                if len(items) >= 5000 or sent >= n:
                    await producer.send_many(REGISTRY_INBOUND, items)
                    items = []
        print(f"published {n} events in {time.perf_counter() - started:.1f} s")
        end = await offsets(probe, REGISTRY_INBOUND)
    finally:
        await probe.stop()
    return start, end


def backend_cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a local process (a PostgreSQL backend), from /proc; 0 when unreadable."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Meter:
    """Rate from the end of the first batch to the moment ``n`` records are done, and the CPU
    time this process spent meanwhile (on a shared machine a steadier figure than the rate)."""

    def __init__(self, n: int, backend_pid: int | None = None) -> None:
        self.n = n
        self.backend_pid = backend_pid  # a database backend whose CPU counts too (baseline)
        self.backend_cpu: tuple[float, float] | None = None
        self.first: tuple[float, int, float] | None = None
        self.done_at: tuple[float, float] | None = None
        self.started = time.perf_counter()

    def update(self, done: int) -> bool:
        now = time.perf_counter()
        if done and self.first is None:
            self.first = (now, done, time.process_time())
            self.backend_cpu = (backend_cpu_seconds(self.backend_pid), 0.0)
        if done >= self.n and self.done_at is None:
            self.done_at = (now, time.process_time())
            if self.backend_cpu is not None:
                self.backend_cpu = (self.backend_cpu[0], backend_cpu_seconds(self.backend_pid))
        return self.done_at is not None

    @property
    def backend_cpu_ms_per_event(self) -> float:
        """CPU of ``backend_pid`` per event over the measured span (0 without one)."""
        assert self.first is not None and self.backend_cpu is not None
        return 1000 * (self.backend_cpu[1] - self.backend_cpu[0]) / max(self.n - self.first[1], 1)

    @property
    def cpu_ms_per_event(self) -> float:
        """Process CPU per event over the measured span (``time.process_time``)."""
        assert self.first is not None and self.done_at is not None
        _, d0, cpu0 = self.first
        return 1000 * (self.done_at[1] - cpu0) / max(self.n - d0, 1)

    @property
    def rate(self) -> float:
        assert self.first is not None and self.done_at is not None
        t0, d0, _ = self.first
        done_at = self.done_at[0]
        return (self.n - d0) / (done_at - t0) if done_at > t0 else float("inf")

    @property
    def wall(self) -> float:
        assert self.done_at is not None
        return self.done_at[0] - self.started


async def baseline(
    n: int,
    start: dict[TopicPartition, int],
    end: dict[TopicPartition, int],
    values: list[bytes],
    *,
    validate: bool = False,
) -> Meter:
    """``values`` receives the record values read, for the validation floor. ``validate``: each
    record is first read through the public contract's ``parse`` (the registry's validation), its
    identity code blind-indexed and encrypted, and those two stored beside the record (the
    baseline issue 17 measures the registry against)."""
    database = unique("bench_baseline")
    admin = await asyncpg.connect(server_url_of(PG_URL))
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    conn = await asyncpg.connect(server_url_of(PG_URL, database))
    await conn.execute(
        "CREATE TABLE events (customer_number text, event_id text, event_time timestamptz, value bytea,"
        " digest bytea, code bytea)"
    )
    keys = KeyRing(parse_master_key(new_master_key()))
    cipher = FieldCipher("subject", os.urandom(32))
    group = unique("bench-baseline")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP, group_id=group, enable_auto_commit=False, max_partition_fetch_bytes=4 * 1024 * 1024
    )
    await consumer.start()
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        meter = Meter(n, backend_pid=await conn.fetchval("SELECT pg_backend_pid()"))
        done = 0
        remaining = {tp for tp in start if end[tp] > start[tp]}
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
            rows: list[tuple[str, str, datetime, bytes, bytes | None, bytes | None]] = []
            commit: dict[TopicPartition, OffsetAndMetadata] = {}
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= end[tp]:
                        continue
                    if validate:
                        event = parse(REGISTRY_INBOUND, record.value)
                        code = getattr(getattr(event.data, "person", None), "personal_identity_code", None)
                        rows.append(
                            (
                                getattr(event.data, "customer_number", ""),
                                event.envelope.id,
                                event.envelope.time,
                                record.value,
                                keys.blind_index("personal_identity_code", code) if code else None,
                                cipher.encrypt("personal_identity_code", code),
                            )
                        )
                        continue
                    values.append(record.value)
                    body = json.loads(record.value)
                    rows.append(
                        (
                            body["data"]["customer_number"],
                            body["id"],
                            datetime.fromisoformat(body["time"]),
                            record.value,
                            None,
                            None,
                        )
                    )
                commit[tp] = OffsetAndMetadata(records[-1].offset + 1, "")
                if records[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
            if rows:
                await conn.copy_records_to_table("events", records=rows)
                await consumer.commit(commit)
                done += len(rows)
                meter.update(done)
        return meter
    finally:
        await consumer.stop()
        await conn.close()
        await drop_database(database)


async def registry(n: int, start: dict[TopicPartition, int], *, keys_database: bool) -> Meter:
    from lampo.db import MigrationSource, create_pool, ensure_database, migrate, platform_migrations
    from lampo.registry.app import MIGRATIONS, build
    from lampo.registry.settings import RegistrySettings

    settings = RegistrySettings(
        database=(database := unique("bench_registry")),
        consumer_group=unique("bench-registry"),
        master_key=new_master_key(),
        # As deployed: the subject keys in a database of their own (LAMPO_KEYS_DATABASE).
        keys_database=f"{database}_keys" if keys_database else None,
    )
    # The database and its schema first, so the timed part is ingest only.
    await ensure_database(settings.database_url)
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    await migrate(pool, [platform_migrations(), MigrationSource("registry", MIGRATIONS)])
    await pool.close()
    # Its other consumers (consent, privacy tasks) start at the ends of their topics: their
    # history belongs to other runs. The inbound group starts where the published events start.
    await fast_forward_group(settings.consumer_group or "", [CONSENT_EVENTS, PRIVACY_TASKS])
    group = consumer_group_for(settings.consumer_group or "", REGISTRY_INBOUND)
    committer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=group, enable_auto_commit=False)
    await committer.start()
    committer.assign(list(start))
    await committer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in start.items()})
    await committer.stop()

    runtime = build(settings)
    try:
        async with running(runtime.app):
            consumer = runtime.consumers[0]
            meter = Meter(n)
            while not meter.update(consumer.stats.processed):  # noqa: ASYNC110 - polling a counter
                await asyncio.sleep(0.01)
            print(f"registry consumer: {consumer.stats}")
            # Transactions per batch, as PostgreSQL counts them (its statistics lag by up to a
            # second or so: a close figure, counted from the database's creation).
            await asyncio.sleep(1.5)
            admin = await asyncpg.connect(server_url_of(PG_URL))
            try:
                for name in (settings.database, settings.keys_database):
                    if name:
                        commits = await admin.fetchval(
                            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", name
                        )
                        per_batch = (commits or 0) / max(consumer.stats.batches, 1)
                        print(f"commits in {name}: {commits} ({per_batch:.1f} per inbound batch)")
            finally:
                await admin.close()
            # Printed before the service stops, so a slow shutdown on a busy broker cannot hide it.
            print(f"registry measured: {meter.rate:,.0f} events/s, {meter.cpu_ms_per_event:.3f} ms CPU/event")
            dead = sum(consumer.stats.dead_lettered.values())
            if dead:
                print(f"registry dead-lettered {dead} records: {consumer.stats.dead_lettered}")
        return meter
    finally:
        await drop_database(settings.database or "")
        if settings.keys_database:
            await drop_database(settings.keys_database)


def validation_floor(values: list[bytes]) -> float:
    """CPU ms per event of what the issue asks of every ``customer.upserted`` before any storage:
    ``parse`` (the public contract's validation), the identity code's blind index and its
    encryption with a subject's data key (one field only; the registry encrypts every section)."""
    keys = KeyRing(parse_master_key(new_master_key()))
    cipher = FieldCipher("subject", os.urandom(32))
    started = time.process_time()
    for value in values:
        data = parse(REGISTRY_INBOUND, value).data
        code = getattr(getattr(data, "person", None), "personal_identity_code", None)
        if code:
            keys.blind_index("personal_identity_code", code)
            cipher.encrypt("personal_identity_code", code)
    return 1000 * (time.process_time() - started) / max(len(values), 1)


async def main(n: int, months: int, keys_database: bool) -> None:
    start, end = await publish(n, months)
    published = sum(end[tp] - start[tp] for tp in start)
    if published < n:
        raise SystemExit(f"only {published} records landed on {REGISTRY_INBOUND}")
    values: list[bytes] = []
    base = await baseline(n, start, end, values)
    print(f"baseline (aiokafka + copy_records_to_table): {base.rate:,.0f} events/s ({base.wall:.1f} s wall)")
    checked = await baseline(n, start, end, [], validate=True)
    print(
        f"validating baseline (aiokafka + parse + identity code blind index and encryption + copy_records_to_table):"
        f" {checked.rate:,.0f} events/s, {checked.cpu_ms_per_event:.3f} ms CPU/event ({checked.wall:.1f} s wall)"
    )
    floor_ms = validation_floor(values)
    del values
    # The least any registry spends per event: what the baseline spends (its process and its
    # database backend: read the record, store it) plus the contract's validation.
    least_ms = base.cpu_ms_per_event + base.backend_cpu_ms_per_event + floor_ms
    cores = os.cpu_count() or 1
    bound = cores * 1000 / least_ms / base.rate
    print(
        f"baseline CPU per event: {base.cpu_ms_per_event:.3f} ms in its process, {base.backend_cpu_ms_per_event:.3f} ms"
        f" in its database backend; validation, blind index and encryption of the identity code alone (no I/O): {floor_ms:.3f} ms.\n"
        f"A registry that did only that, on all {cores} cores, perfectly parallel: at most"
        f" {cores * 1000 / least_ms:,.0f} events/s = ratio {bound:.2f}"
    )
    reg = await registry(n, start, keys_database=keys_database)
    print(f"registry (validate, encrypt, index, outbox):  {reg.rate:,.0f} events/s ({reg.wall:.1f} s wall)")
    ratio = reg.rate / base.rate
    checked_ratio = reg.rate / checked.rate
    mix = f"each customer.upserted followed by {months} consumption.reported" if months else "customer.upserted"
    print(f"ratio registry/validating baseline: {checked_ratio:.2f} (goal >= 0.5), N = {n} ({mix})")
    print(f"ratio registry/raw baseline: {ratio:.3f}")
    print(
        f"process CPU per event: baseline {base.cpu_ms_per_event:.3f} ms, validating baseline"
        f" {checked.cpu_ms_per_event:.3f} ms, registry {reg.cpu_ms_per_event:.3f} ms"
    )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    figures = [
        ("baseline events per second", round(base.rate), "events/s", None, "n/a", None),
        ("validating baseline events per second", round(checked.rate), "events/s", None, "n/a", None),
        ("registry events per second", round(reg.rate), "events/s", round(checked.rate), ">= 3,000", reg.rate >= 3000),
        ("registry/validating baseline ratio", round(checked_ratio, 3), "ratio", None, ">= 0.5", checked_ratio >= 0.5),
        ("registry/baseline ratio", round(ratio, 3), "ratio", None, "n/a", None),
        ("validating baseline process CPU per event", round(checked.cpu_ms_per_event, 3), "ms", None, "n/a", None),
        ("registry process CPU per event", round(reg.cpu_ms_per_event, 3), "ms", None, "n/a", None),
        ("validation and identity code crypto alone, CPU per event", round(floor_ms, 3), "ms", None, "n/a", None),
        ("baseline database backend CPU per event", round(base.backend_cpu_ms_per_event, 3), "ms", None, "n/a", None),
        (f"highest ratio for baseline + validation on {cores} cores", round(bound, 3), "ratio", None, "n/a", None),
    ]
    for figure, value, unit, baseline_value, goal, met in figures:
        result = {
            "bench": "ingest",
            "figure": figure,
            "value": value,
            "unit": unit,
            "baseline": baseline_value,
            "goal": goal,
            "met": met,
        }
        print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--readings",
        type=int,
        default=0,
        metavar="MONTHS",
        help="follow each new customer with MONTHS monthly consumption.reported readings (a seeded register)",
    )
    parser.add_argument(
        "--keys-in-data-database",
        action="store_true",
        help="keep the subject keys in the registry's own database (default: a keys database, as deployed)",
    )
    args: Any = parser.parse_args()
    # The registry as deployed: its trace sampling from deploy/runtime.env, and every span it
    # samples encoded and exported (to a receiver that drops them; the backend is elsewhere).
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
    from suite import OtlpReceiver, runtime_env

    deployed = runtime_env()
    os.environ.update(deployed)
    sink = OtlpReceiver(keep=False)
    sink.start()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.endpoint
    print(f"registry runs with {deployed}; its spans exported to a receiver that drops them")
    asyncio.run(main(args.events, args.readings, not args.keys_in_data_database))
