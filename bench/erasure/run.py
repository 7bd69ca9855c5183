"""Erasure benchmark: a burst of requests submitted at once, then a steady rate.

    .venv/bin/python bench/erasure/run.py [--burst 1000 --steady-seconds 60 --rate 20]

Real broker, real PostgreSQL. The coordinator runs in this process with erasure auto-approved;
four participants (``lampo.participant.Participant`` with trivial erasure handlers, each on its
own runtime, database and consumer group) answer over privacy.tasks.v1 / privacy.acks.v1.
Identity: the coordinator's ``customer_number`` resolver (a customer number is the subject),
so the registry is not part of the measurement. Latency is end to end: from handing
dsar.submitted to the producer until dsar.completed is read back from dsar.events.v1.
Goals: burst under 30 s, steady p99 under 500 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from lampo.contracts.catalog import DSAR_EVENTS, DSAR_REQUESTS, PRIVACY_ACKS, PRIVACY_TASKS
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyTask
from lampo.crypto import new_master_key
from lampo.dsar.app import build
from lampo.dsar.settings import DsarSettings
from lampo.participant import Participant, TaskOutcome, subscribe
from lampo.service import Runtime
from lampo.settings import ServiceSettings
from lampo.testing import BOOTSTRAP, Producer, drop_database, fast_forward_group, signing_settings, unique

PARTICIPANTS = ["bench-registry", "bench-billing", "bench-recordings", "bench-consent"]


async def erase(conn: Any, task: PrivacyTask) -> TaskOutcome:
    return TaskOutcome(erased={c: 1 for c in task.categories[:2]})


def request(n: int) -> tuple[str, bytes]:
    rid = f"bench-{uuid.uuid4().hex[:16]}"
    now = datetime.now(UTC).isoformat()
    data = {
        "request_id": rid,
        "kind": "erasure",
        "identifiers": {"customer_number": f"9{n:08d}"},
        "verification": {"method": "strong_electronic", "verified_by": "bench", "verified_at": now},
        "received_at": now,
        "channel": "bench",
    }
    return rid, CloudEvent.new("dsar.submitted", "urn:lampo:bench", data).to_bytes()


class Completions:
    """Reads dsar.events.v1, privacy.tasks.v1 and privacy.acks.v1 from their current ends and notes
    when each request's records arrived: dsar.accepted, its last task, its last ack and
    dsar.completed (the hops of the end-to-end latency). Keys are request ids on all three."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.statuses: dict[str, str] = {}
        self.accepted: dict[str, float] = {}
        self.last_task: dict[str, float] = {}
        self.last_ack: dict[str, float] = {}
        self._consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, group_id=None)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        topics = [DSAR_EVENTS, PRIVACY_TASKS, PRIVACY_ACKS]
        if not all(self._consumer.partitions_for_topic(t) for t in topics):
            await self._consumer._client.force_metadata_update()
        parts = [TopicPartition(t, p) for t in topics for p in sorted(self._consumer.partitions_for_topic(t) or [])]
        self._consumer.assign(parts)
        for tp, offset in (await self._consumer.end_offsets(parts)).items():
            self._consumer.seek(tp, offset)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for tp, records in batch.items():
                for r in records:
                    body = json.loads(r.value)
                    rid = body["data"].get("request_id")
                    if tp.topic == PRIVACY_TASKS:
                        self.last_task[rid] = now
                    elif tp.topic == PRIVACY_ACKS:
                        self.last_ack[rid] = now
                    elif body["type"] == "dsar.accepted":
                        self.accepted.setdefault(rid, now)
                    elif body["type"] == "dsar.completed":
                        self.seen.setdefault(rid, now)
                        self.statuses[rid] = body["data"]["status"]

    async def wait(self, ids: list[str], timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if all(i in self.seen for i in ids):
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self._consumer.stop()


async def participant_runtime(name: str, master: str) -> Runtime:
    settings = ServiceSettings(
        database=unique("bench_part"), consumer_group=unique("bench-part"), master_key=master,
        signer=name, **signing_settings(name),
    )  # fmt: skip
    await fast_forward_group(settings.consumer_group or "", [PRIVACY_TASKS])
    runtime = Runtime(settings, migrations=None)
    subscribe(runtime, Participant(name, {"erasure": erase}))
    await runtime.app.start()
    return runtime


# Before the long poll and the coordinator's fewer round trips (last quiet run, 2026-11-28).
BASELINE_BURST_S = 23.7
BASELINE_P99_MS = 637


def result(figure: str, value: float, unit: str, baseline: float | None, goal: str | None, met: bool | None) -> None:
    """One line per figure for bench/RESULTS.md (bench/run.py collects them)."""
    line = {"bench": "erasure", "figure": figure, "value": value, "unit": unit, "baseline": baseline}
    print("RESULT " + json.dumps({**line, "goal": goal, "met": met}))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(burst: int, steady_seconds: float, rate: float) -> None:
    logging.basicConfig(level=logging.WARNING)
    master = new_master_key()
    settings = DsarSettings(
        database=unique("bench_dsar"),
        consumer_group=unique("bench-dsar"),
        master_key=master,
        participants=PARTICIPANTS,
        **signing_settings("coordinator", *PARTICIPANTS),
        auto_approve=["erasure"],
        identity_resolver="customer_number",
    )
    await fast_forward_group(settings.consumer_group or "", [DSAR_REQUESTS, PRIVACY_ACKS])
    runtimes = [await participant_runtime(name, master) for name in PARTICIPANTS]
    dsar = build(settings)
    await dsar.runtime.app.start()
    completions = Completions()
    await completions.start()
    print("identity: resolver 'customer_number' (customer numbers map straight to subjects; registry not involved)")
    print(f"participants: {', '.join(PARTICIPANTS)} (in-process lampo.participant.Participant, own databases)")
    try:
        async with Producer() as producer:
            # warm-up: connections, group joins
            rid, raw = request(0)
            await producer.send_many(DSAR_REQUESTS, [(rid, raw)])
            await completions.wait([rid], 60)

            items = [request(n) for n in range(1, burst + 1)]
            cpu_start = time.process_time()
            start = time.perf_counter()
            await producer.send_many(DSAR_REQUESTS, [(rid, raw) for rid, raw in items])
            ok = await completions.wait([rid for rid, _ in items], 300)
            burst_s = max(completions.seen.get(rid, time.perf_counter()) for rid, _ in items) - start
            burst_cpu_ms = (time.process_time() - cpu_start) * 1000 / burst
            print(
                f"burst: {burst} erasure requests submitted at once, all completed in {burst_s:.2f} s"
                + ("" if ok else " (TIMED OUT)")
            )

            sent: dict[str, float] = {}
            interval = 1.0 / rate
            cpu_start = time.process_time()
            t0 = time.perf_counter()
            n = burst + 1
            while time.perf_counter() - t0 < steady_seconds:
                rid, raw = request(n)
                n += 1
                sent[rid] = time.perf_counter()
                await producer.send_many(DSAR_REQUESTS, [(rid, raw)])
                next_at = t0 + (n - burst - 1) * interval
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            ok = await completions.wait(list(sent), 120)
            steady_cpu_ms = (time.process_time() - cpu_start) * 1000 / len(sent)
            latencies = [(completions.seen[r] - t) * 1000 for r, t in sent.items() if r in completions.seen]
            print(
                f"steady: {len(sent)} requests at {rate:g}/s for {steady_seconds:g} s; completed {len(latencies)}"
                f"; end-to-end p50 {pct(latencies, 0.5):.0f} ms, p99 {pct(latencies, 0.99):.0f} ms,"
                f" max {max(latencies):.0f} ms, mean {statistics.mean(latencies):.0f} ms"
                + ("" if ok else " (SOME TIMED OUT)")
            )
            hops = {
                "submitted -> dsar.accepted (intake, resolution, plan, relay)": (sent, completions.accepted),
                "dsar.accepted -> last task on the topic": (completions.accepted, completions.last_task),
                "last task -> last ack (participants and their relays)": (completions.last_task, completions.last_ack),
                "last ack -> dsar.completed (acks, aggregate, relay)": (completions.last_ack, completions.seen),
            }
            # CPU of this process (coordinator, four participants, their relays, the bench's own
            # producer and reader) per request: the cost that makes the queues, independent of
            # how busy the rest of the machine is.
            print(f"CPU of this process per request: burst {burst_cpu_ms:.1f} ms, steady {steady_cpu_ms:.1f} ms")
            print("steady phase, per hop (as seen on the topics):")
            for label, (start_at, end_at) in hops.items():
                spans = [(end_at[r] - start_at[r]) * 1000 for r in sent if r in start_at and r in end_at]
                if spans:
                    print(f"  {label}: p50 {pct(spans, 0.5):.0f} ms, p99 {pct(spans, 0.99):.0f} ms")
            statuses = {completions.statuses.get(r) for r in sent} | {completions.statuses.get(r) for r, _ in items}
            print(f"completion statuses: {sorted(s or 'missing' for s in statuses)}")
            print(
                f"goals: burst < 30 s: {'met' if burst_s < 30 else 'NOT met'}; p99 < 500 ms: {'met' if pct(latencies, 0.99) < 500 else 'NOT met'}"
            )
            p50, p99 = pct(latencies, 0.5), pct(latencies, 0.99)
            result("burst completion time", round(burst_s, 2), "s", BASELINE_BURST_S, "< 30 s", ok and burst_s < 30)
            result("steady end-to-end latency p50", round(p50), "ms", None, None, None)
            result("steady end-to-end latency p99", round(p99), "ms", BASELINE_P99_MS, "< 500 ms", p99 < 500)
            result("CPU per request (steady, bench process)", round(steady_cpu_ms, 1), "ms", None, None, None)
    finally:
        await completions.stop()
        await dsar.runtime.app.stop()
        for r in runtimes:
            await r.app.stop()
        await drop_database(settings.database or "")
        for r in runtimes:
            await drop_database(r.settings.database or "")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--steady-seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(main(args.burst, args.steady_seconds, args.rate))
