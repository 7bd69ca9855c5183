"""Withdrawal latency under load: from publishing consent.withdrawn on consent.inbound.v1 to its
consent.changed (state withdrawn) on consent.events.v1, while a background producer sends
1,000 consent events per second. Goal: p99 under 200 ms.

    .venv/bin/python bench/withdrawal/run.py [--withdrawals 1000] [--rate 1000] [--in-process]

The consent service runs as a subprocess (``lampo-consent``, as in production) with its own new
database and consumer group, or in this process with ``--in-process``. Synthetic customer numbers
only. The withdrawing customers are granted consent first (not measured), then each withdrawal is
timed on its own; the background load changes state on every event, so the service's outbox and
the topic carry about 1,000 records per second too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from lampo.consent.settings import ConsentSettings
from lampo.contracts.catalog import CONSENT_EVENTS, CONSENT_INBOUND, PRIVACY_TASKS
from lampo.contracts.envelope import CONTENT_TYPE, CloudEvent
from lampo.crypto import new_master_key
from lampo.testing import BOOTSTRAP, drop_database, eventually, fast_forward_group, running, unique

HEADERS = [("content-type", CONTENT_TYPE.encode())]
ROOT = Path(__file__).resolve().parents[2]


def event(kind: str, customer: str, purpose: str = "profiling") -> bytes:
    data = {"customer_number": customer, "purpose": purpose, "channel": "bench", "at": datetime.now(UTC)}
    return CloudEvent.new(kind, "urn:bench:withdrawal", data).to_bytes()


class Changes:
    """Reads consent.events.v1 from its current end; records when each withdrawal was announced."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.encode()
        self.granted: set[str] = set()
        self.withdrawn: dict[str, float] = {}
        self.total = 0
        self._consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, group_id=None)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        parts = self._consumer.partitions_for_topic(CONSENT_EVENTS)
        if not parts:
            await self._consumer._client.force_metadata_update()
            parts = self._consumer.partitions_for_topic(CONSENT_EVENTS) or set()
        partitions = [TopicPartition(CONSENT_EVENTS, p) for p in sorted(parts)]
        self._consumer.assign(partitions)
        for tp, offset in (await self._consumer.end_offsets(partitions)).items():
            self._consumer.seek(tp, offset)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=20, max_records=2000)
            now = time.perf_counter()
            for records in batch.values():
                self.total += len(records)
                for r in records:
                    if not r.key or not r.key.startswith(self.prefix):
                        continue
                    data = json.loads(r.value)["data"]
                    customer = data["customer_number"]
                    if data["state"] == "granted":
                        self.granted.add(customer)
                    elif data["state"] == "withdrawn":
                        self.withdrawn.setdefault(customer, now)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


async def background(
    producer: AIOKafkaProducer, rate: int, customers: int, stop: asyncio.Event, sent: list[int]
) -> None:
    """``rate`` events per second in 10 ms ticks, alternating grant and withdrawal per customer so
    that every event changes a state (and so is announced)."""
    tick = 0.01
    per_tick = rate * tick
    owed = 0.0
    n = 0
    next_at = time.perf_counter()
    while not stop.is_set():
        owed += per_tick
        while owed >= 1:
            owed -= 1
            customer = f"bg{n % customers:07d}"
            kind = "consent.given" if (n // customers) % 2 == 0 else "consent.withdrawn"
            await producer.send(CONSENT_INBOUND, event(kind, customer), key=customer.encode(), headers=HEADERS)
            n += 1
        sent[0] = n
        next_at += tick
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))


SERVICE_PID: list[int] = []
"""The consent service's process id (this process with ``--in-process``)."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


HANDLED: dict[str, float] = {}
"""In-process only: when the service committed each withdrawal (splits the latency in two)."""


def observe(_: str, items: list[Any]) -> None:
    now = time.perf_counter()
    for item in items:
        if item.event.envelope.type == "consent.withdrawn":
            HANDLED.setdefault(item.event.data.customer_number, now)


@contextlib.asynccontextmanager
async def service(settings: ConsentSettings, in_process: bool) -> AsyncIterator[None]:
    await fast_forward_group(settings.consumer_group or "", [CONSENT_INBOUND, PRIVACY_TASKS])
    if in_process:
        from lampo.consent.app import build

        async with running(build(settings, observers=[observe]).app):
            await asyncio.sleep(3)  # let the consumers join their group
            SERVICE_PID[:] = [os.getpid()]
            yield
        return
    env = {
        **os.environ,
        "LAMPO_DATABASE": settings.database or "",
        "LAMPO_CONSUMER_GROUP": settings.consumer_group or "",
        "LAMPO_MASTER_KEY": settings.master_key.get_secret_value() if settings.master_key else "",
        "LAMPO_HTTP_PORT": str(settings.port),
    }
    proc = await asyncio.create_subprocess_exec(str(ROOT / ".venv/bin/lampo-consent"), env=env)
    try:
        url = f"http://127.0.0.1:{settings.port}/health/ready"

        async def up() -> bool:
            if proc.returncode is not None:
                raise SystemExit("the consent service exited")
            return await asyncio.to_thread(ready, url)

        await eventually(up, timeout=60, interval=0.2)
        await asyncio.sleep(3)  # let the consumers join their group
        SERVICE_PID[:] = [proc.pid]
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


# Before the long poll (consent consumer_batch 100; the worse of two runs, 2026-11-28).
BASELINE_P99_MS = 210


def result(figure: str, value: float, unit: str, baseline: float | None, goal: str | None, met: bool | None) -> None:
    """One line per figure for bench/RESULTS.md (bench/run.py collects them)."""
    line = {"bench": "withdrawal", "figure": figure, "value": value, "unit": unit, "baseline": baseline}
    print("RESULT " + json.dumps({**line, "goal": goal, "met": met}))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--withdrawals", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=1000, help="background consent events per second")
    parser.add_argument("--withdrawal-rate", type=float, default=50.0, help="measured withdrawals per second")
    parser.add_argument("--in-process", action="store_true", help="run the service in this process")
    parser.add_argument("--port", type=int, default=18102)
    args = parser.parse_args()

    settings = ConsentSettings(
        database=unique("bench_consent"),
        consumer_group=unique("bench-consent"),
        http_port=args.port,
        master_key=new_master_key(),
    )
    prefix = unique("bw")
    customers = [f"{prefix}{i:06d}" for i in range(args.withdrawals)]
    changes = Changes(prefix)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, linger_ms=0)
    await producer.start()
    await changes.start()
    try:
        async with service(settings, args.in_process):
            stop = asyncio.Event()
            sent = [0]
            load = asyncio.create_task(background(producer, args.rate, 5000, stop, sent))
            # Grant consent to every withdrawing customer first (not measured).
            for c in customers:
                await producer.send(CONSENT_INBOUND, event("consent.given", c), key=c.encode(), headers=HEADERS)
            await producer.flush()
            await eventually(lambda: len(changes.granted) >= len(customers), timeout=120)
            await asyncio.sleep(2)  # the load settles
            load_start, load_sent = time.perf_counter(), sent[0]
            cpu_start, announced_start = cpu_seconds(SERVICE_PID[0]), changes.total
            published: dict[str, float] = {}
            gap = 1.0 / args.withdrawal_rate
            for c in customers:
                value = event("consent.withdrawn", c)
                published[c] = time.perf_counter()
                await (await producer.send(CONSENT_INBOUND, value, key=c.encode(), headers=HEADERS))
                await asyncio.sleep(gap)
            with contextlib.suppress(AssertionError):
                await eventually(lambda: len(changes.withdrawn) >= len(customers), timeout=30)
            achieved = (sent[0] - load_sent) / (time.perf_counter() - load_start)
            # The service's CPU per event it handled over the measured phase (every event changes a
            # state, so each handled one is announced): what makes its queues, whatever else the
            # machine is doing (in-process, it includes the load generator).
            handled_events = max(1, changes.total - announced_start)
            cpu_per_event_ms = (cpu_seconds(SERVICE_PID[0]) - cpu_start) * 1000 / handled_events
            stop.set()
            await load
    finally:
        await changes.stop()
        await producer.stop()
        await drop_database(settings.database or "")

    latencies = [(changes.withdrawn[c] - published[c]) * 1000 for c in customers if c in changes.withdrawn]
    where = "this process, load generator included" if args.in_process else "the service's process"
    print(f"CPU per inbound event ({where}): {cpu_per_event_ms:.2f} ms")
    missing = len(customers) - len(latencies)
    print(f"withdrawals measured: {len(latencies)} of {len(customers)} ({missing} not announced within 30 s)")
    print(
        f"background load achieved: {achieved:.0f} events/s (asked {args.rate}); records read on {CONSENT_EVENTS}: {changes.total}"
    )
    if latencies:
        print(
            f"withdrawal -> consent.changed: p50 {percentile(latencies, 0.50):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms,"
            f" max {max(latencies):.1f} ms (goal: p99 < 200 ms)"
        )
    handled = [(HANDLED[c] - published[c]) * 1000 for c in customers if c in HANDLED]
    if handled:
        print(
            f"  of which inbound -> committed in the service: p50 {percentile(handled, 0.5):.1f} ms, p99 {percentile(handled, 0.99):.1f} ms"
        )
    if latencies:
        p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
        result("withdrawal to consent.changed p50", round(p50, 1), "ms", None, None, None)
        result(
            "withdrawal to consent.changed p99",
            round(p99, 1),
            "ms",
            BASELINE_P99_MS,
            "< 200 ms",
            p99 < 200 and not missing,
        )
    result("service CPU per inbound event", round(cpu_per_event_ms, 3), "ms", None, None, None)
    sys.exit(0 if latencies and not missing and percentile(latencies, 0.99) < 200 else 1)


if __name__ == "__main__":
    asyncio.run(main())
