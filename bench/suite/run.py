"""The suite as deployed, driven from outside, at a register of realistic size.

    .venv/bin/python bench/suite/run.py [--sizes 10000,100000] [--months 36] [--burst 1000]
        [--steady-seconds 30] [--rate 20]

(``make bench`` runs it with no options: sizes from LAMPO_BENCH_SIZES, default 10,000; months
from LAMPO_BENCH_MONTHS, default 36; heavy subjects and their daily readings from
LAMPO_BENCH_HEAVY and LAMPO_BENCH_HEAVY_READINGS, default 3 and 50,000.) Seeding dominates
the time: the registry ingested 166 events/s on the shared machine (load ~7), so three years
of monthly readings for 100,000 customers (3.6 M events) would take hours; LAMPO_BENCH_MONTHS
sets how many months of readings the register gets.

For each register size: every installed service starts as its own process, as ``make up`` runs
them (``tests/suite.py``: each service's ``lampo-<name>`` executable, its own database, keys
database, role, consumer group, HTTP port and signing key; nothing of /work/main/.run is
touched). ``lampo seed --wait`` fills the register through the public inbound topics and waits
until registry, billing, recordings, consent and retention have read everything. Then, from
outside only:

- **burst**: ``--burst`` erasure requests on dsar.requests.v1 at once, as the portal sends them
  (identified by customer number, verified ``strong_electronic``). Each waits for approval (the
  suite's default for erasure); the managing director (a staff user with that role, made through
  ``lampo admin create-first-admin`` and the staff API) approves each through the staff service's
  ``POST /v1/dsar/requests/{id}/approve`` as soon as dsar.events.v1 says it waits, so the staff
  service checks the role, audits and signs. Resolution is the registry's; the participants are
  the real registry, billing, recordings and consent. Figure: first submission to last
  ``dsar.completed``.
- **steady**: erasures at ``--rate`` per second for ``--steady-seconds``, each timed from
  submission to ``dsar.completed`` (approval included; also split at the approval).
- **rows read by sequential scans** per erasure, summed over every database of the suite (data
  and keys): ``pg_stat_user_tables.seq_tup_read`` before and after the burst.
- **CPU per erasure** per process over the burst (/proc/<pid>/stat): each service, the broker
  (the java process running Kafka) and the PostgreSQL backends serving the suite's databases.
  The machine is shared, so the broker's figure includes other clients' work.
- **RSS** of each service (its peak, VmHWM) at the end.
- **access package** for a heavy subject (an entrepreneur with ``--heavy-readings`` daily
  readings and 20 recordings): submission to ``dsar.completed`` with the package.
- **withdrawal**: consent.withdrawn -> consent.changed (withdrawn), one at a time at 20/s for
  customers given consent just before (not timed).

With two sizes, the cost ratio (larger against smaller) of rows read, CPU and steady p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import suite as harness  # noqa: E402 - the test harness, by path
from suite import BIN, Suite, installed, launch, runtime_env  # noqa: E402

from lampo.contracts.catalog import CONSENT_EVENTS, CONSENT_INBOUND, DSAR_EVENTS, DSAR_REQUESTS  # noqa: E402
from lampo.contracts.envelope import CloudEvent  # noqa: E402
from lampo.testing import BOOTSTRAP, PG_URL, Producer  # noqa: E402

SEEDED_GROUPS = ["registry", "billing", "recordings", "consent", "retention"]
SIZE_CLK = os.sysconf("SC_CLK_TCK")


def result(figure: str, value: float | None, unit: str, goal: str | None = None, met: bool | None = None) -> None:
    """One line per figure for bench/RESULTS.md (bench/run.py collects them)."""
    line = {"bench": "suite", "figure": figure, "value": value, "unit": unit, "baseline": None}
    print("RESULT " + json.dumps({**line, "goal": goal, "met": met}), flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def say(text: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", flush=True)


# --- processes: CPU and memory from /proc ---------------------------------------------------


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / SIZE_CLK  # utime, stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def broker_pids() -> list[int]:
    return [p for p in all_pids() if (c := cmdline(p)).startswith("java") and "kafka" in c.lower()]


def backend_pids(databases: list[str]) -> list[int]:
    """PostgreSQL backends serving the suite's databases (their process title names the database)."""
    return [
        p for p in all_pids() if (c := cmdline(p)).startswith("postgres:") and any(f" {d} " in c for d in databases)
    ]


@dataclass
class CpuSample:
    per_pid: dict[int, float]

    @classmethod
    def take(cls, pids: list[int]) -> CpuSample:
        return cls({p: cpu_seconds(p) for p in pids})


def cpu_between(before: CpuSample, after: CpuSample) -> float:
    return sum(v - before.per_pid.get(p, 0.0) for p, v in after.per_pid.items())


# --- databases ------------------------------------------------------------------------------


def suite_databases(suite: Suite) -> list[str]:
    return [d for db in suite.databases for d in (db, f"{db}_keys")]


async def seq_rows(databases: list[str]) -> dict[str, int]:
    """Rows read by sequential scans so far, per database (statistics flushed within a second)."""
    rows = {}
    for database in databases:
        conn = await asyncpg.connect(PG_URL, database=database)
        try:
            rows[database] = int(await conn.fetchval("SELECT coalesce(sum(seq_tup_read), 0) FROM pg_stat_user_tables"))
        finally:
            await conn.close()
    return rows


async def seq_tables(databases: list[str]) -> dict[tuple[str, str], int]:
    out = {}
    for database in databases:
        conn = await asyncpg.connect(PG_URL, database=database)
        try:
            for r in await conn.fetch("SELECT relname, seq_tup_read FROM pg_stat_user_tables WHERE seq_tup_read > 0"):
                out[(database, r["relname"])] = int(r["seq_tup_read"])
        finally:
            await conn.close()
    return out


async def explain_missing(suite: Suite, missing: list[str], outcomes: Outcomes, approver: Approver) -> None:
    """Where each request that never completed stands: what the benchmark saw, and dsar's record of
    its status and tasks."""
    conn = await asyncpg.connect(PG_URL, database=suite["dsar"].env["LAMPO_DATABASE"])
    try:
        for rid in missing[:10]:
            status = await conn.fetchval("SELECT status FROM requests WHERE request_id = $1", rid)
            tasks = await conn.fetch(
                "SELECT participant, status, attempt FROM tasks WHERE request_id = $1 AND current ORDER BY participant",
                rid,
            )
            say(
                f"  not completed: {rid}: awaiting seen {rid in outcomes.awaiting}, approved {rid in approver.approved},"
                f" refused {approver.refused.get(rid)}; dsar: {status}, tasks"
                f" {[(t['participant'], t['status'], t['attempt']) for t in tasks]}"
            )
    finally:
        await conn.close()


# --- outside: the portal, the managing director, the events ---------------------------------


def erasure(customer_number: str, kind: str = "erasure") -> tuple[str, bytes]:
    rid = f"bench-suite-{uuid.uuid4().hex[:16]}"
    now = datetime.now(UTC).isoformat()
    data = {
        "request_id": rid,
        "kind": kind,
        "identifiers": {"customer_number": customer_number},
        "verification": {"method": "strong_electronic", "verified_by": "portal", "verified_at": now},
        "received_at": now,
        "channel": "portal",
    }
    return rid, CloudEvent.new("dsar.submitted", "urn:system:portal", data).to_bytes()


@dataclass
class Outcomes:
    """dsar.events.v1 from its current end: when each of our requests waited and completed."""

    approver: Approver
    awaiting: dict[str, float] = field(default_factory=dict)
    approved: dict[str, float] = field(default_factory=dict)
    completed: dict[str, float] = field(default_factory=dict)
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, group_id=None)
        await self._consumer.start()
        while not self._consumer.partitions_for_topic(DSAR_EVENTS):
            await self._consumer._client.force_metadata_update()
        parts = [TopicPartition(DSAR_EVENTS, p) for p in sorted(self._consumer.partitions_for_topic(DSAR_EVENTS) or [])]
        self._consumer.assign(parts)
        for tp, offset in (await self._consumer.end_offsets(parts)).items():
            self._consumer.seek(tp, offset)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batch.values():
                for r in records:
                    if not r.key or not r.key.startswith(b"bench-suite-"):
                        continue
                    body = json.loads(r.value)
                    rid = body["data"]["request_id"]
                    if body["type"] == "dsar.awaiting_approval":
                        self.awaiting.setdefault(rid, now)
                        self.approver.queue.put_nowait(rid)
                    elif body["type"] in ("dsar.completed", "dsar.rejected"):
                        self.completed.setdefault(rid, now)
                        self.bodies[rid] = body

    async def wait(self, ids: list[str], timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if all(i in self.completed for i in ids):
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self._consumer:
            await self._consumer.stop()


class Approver:
    """The managing director at the staff service: approves each request as it starts waiting."""

    def __init__(self, staff_url: str, username: str, password: str, concurrency: int = 8) -> None:
        self.url, self.username, self.password = staff_url, username, password
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.approved: dict[str, float] = {}
        self.refused: dict[str, str] = {}
        self._client = httpx.AsyncClient(base_url=staff_url, timeout=60)
        self._token = ""
        self._workers: list[asyncio.Task[None]] = []
        self.concurrency = concurrency

    async def login(self) -> None:
        r = await self._client.post("/v1/login", json={"username": self.username, "password": self.password})
        r.raise_for_status()
        self._token = r.json()["token"]

    async def start(self) -> None:
        await self.login()
        self._workers = [asyncio.create_task(self._work()) for _ in range(self.concurrency)]

    async def _work(self) -> None:
        while True:
            rid = await self.queue.get()
            for _ in range(3):
                r = await self._client.post(
                    f"/v1/dsar/requests/{rid}/approve", headers={"authorization": f"Bearer {self._token}"}
                )
                if r.status_code == 401:  # the 15-minute token ran out
                    await self.login()
                    continue
                break
            if r.status_code == 202:
                self.approved[rid] = time.perf_counter()
            else:
                self.refused[rid] = f"{r.status_code} {r.text[:200]}"

    async def stop(self) -> None:
        for w in self._workers:
            w.cancel()
        await self._client.aclose()


async def lampo(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(BIN / "lampo"), *args, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate(stdin.encode() if stdin else None)
    return process.returncode or 0, out.decode()


async def managing_director(suite: Suite) -> tuple[str, str]:
    """A first administrator (``lampo admin create-first-admin``, as an operator makes one), who
    then makes the managing director through the staff API."""
    admin, md = ("bench.admin", f"Synteettinen-{secrets.token_hex(6)}-Kevät"), ("toimitus.johtaja", f"Synteettinen-{secrets.token_hex(6)}-Kesä")  # fmt: skip
    code, out = await lampo(
        "admin", "create-first-admin", admin[0], env=suite["staff"].env, stdin=f"{admin[1]}\n{admin[1]}\n"
    )
    assert code == 0, out
    async with httpx.AsyncClient(base_url=suite["staff"].url, timeout=30) as http:
        token = (await http.post("/v1/login", json={"username": admin[0], "password": admin[1]})).json()["token"]
        r = await http.post(
            "/v1/users", json={"username": md[0], "password": md[1], "roles": ["managing_director"]},
            headers={"authorization": f"Bearer {token}"},
        )  # fmt: skip
        assert r.status_code == 201, r.text
    return md


# --- one register size ----------------------------------------------------------------------


async def seed(suite: Suite, args: argparse.Namespace, customers: int) -> dict[str, Any]:
    groups = [
        a
        for name in SEEDED_GROUPS
        if name in suite.services
        for a in ("--group", f"{name}={suite[name].env['LAMPO_CONSUMER_GROUP']}")
    ]
    command = [
        "seed", "--customers", str(customers), "--months", str(args.months), "--heavy", str(args.heavy),
        "--heavy-readings", str(args.heavy_readings), "--seed", str(args.seed), "--wait", "--timeout", "14400", "--json",
        *groups,
    ]  # fmt: skip
    say(f"lampo {' '.join(command)}")
    code, out = await lampo(*command)
    print("\n".join(line for line in out.splitlines()[:-1] if not line.startswith("seeding")), flush=True)
    if code != 0:
        raise SystemExit(f"lampo seed failed ({code}): {out[-2000:]}")
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return figures


async def one_size(args: argparse.Namespace, customers: int) -> dict[str, Any]:
    figures: dict[str, Any] = {"customers": customers, "heavy_readings": args.heavy_readings, "replicas": args.replicas}
    logs = Path(tempfile.mkdtemp(prefix="bench-suite-"))
    say(f"== {customers:,} customers: starting {', '.join(installed())} (logs: {logs})")
    # as `make up` runs them (deploy/runtime.env); their spans are encoded and sent, to a receiver
    # that drops them: the tracing backend runs on hosts of its own in production
    suite = await launch(
        installed(), logs, ready_timeout=180, env=runtime_env(), keep_spans=False, replicas=args.replicas
    )
    pids = {name: [i.process.pid for i in suite.instances(name) if i.process] for name in suite.services}
    databases = suite_databases(suite)
    try:
        seeded = await seed(suite, args, customers)
        figures |= {"seed_s": seeded["publish_s"], "seed_rate": seeded["publish_rate"], "events": seeded["events"],
                    "ingest_s": seeded["ingest_s"], "ingest_rate": seeded["ingest_rate"]}  # fmt: skip
        # idle: what the services cost doing nothing (consumers polling, relays, schedules)
        idle_before = {name: sum(map(cpu_seconds, group)) for name, group in pids.items()}
        await asyncio.sleep(args.idle_seconds)
        idle = {
            name: (sum(map(cpu_seconds, group)) - idle_before[name]) * 1000 / args.idle_seconds
            for name, group in pids.items()
        }
        figures["idle_cpu_ms_per_s"] = {k: round(v, 1) for k, v in idle.items()}
        say(
            f"idle CPU per service (ms per second, over {args.idle_seconds:g} s): {figures['idle_cpu_ms_per_s']}, total {sum(idle.values()):.0f}"
        )
        md = await managing_director(suite)
        approver = Approver(suite["staff"].url, *md)
        await approver.start()
        outcomes = Outcomes(approver)
        await outcomes.start()
        # customers to erase: not the heavy subjects (lampo seed makes customers 0, N/3, 2N/3 heavy)
        heavy = {i * max(1, customers // max(1, args.heavy)) for i in range(args.heavy)}
        pool = [i for i in range(customers) if i not in heavy]
        pick = iter(pool[len(pool) // 7 :: 3])  # spread over the register, away from the consents below

        def number(i: int) -> str:
            return f"S{args.seed}-{i:07d}"

        async with Producer() as portal:
            # warm-up: one erasure end to end (connections, caches)
            rid, raw = erasure(number(next(pick)))
            await portal.send_many(DSAR_REQUESTS, [(rid, raw)])
            if not await outcomes.wait([rid], 180):
                raise SystemExit(f"warm-up erasure did not complete; refused: {approver.refused}")
            warm = outcomes.bodies[rid]["data"]
            say(f"warm-up erasure: {warm.get('status') or warm.get('reason')}")

            # --- burst
            items = [erasure(number(next(pick))) for _ in range(args.burst)]
            await asyncio.sleep(1.5)  # statistics of the warm-up flushed
            rows_before = await seq_rows(databases)
            tables_before = await seq_tables(databases)
            watched = {**pids, "broker": broker_pids(), "postgres": backend_pids(databases)}
            cpu_before = {k: CpuSample.take(v) for k, v in watched.items()}
            start = time.perf_counter()
            await portal.send_many(DSAR_REQUESTS, items)
            ok = await outcomes.wait([r for r, _ in items], args.burst_timeout)
            burst_s = max(outcomes.completed.get(r, time.perf_counter()) for r, _ in items) - start
            watched["postgres"] = backend_pids(databases)
            cpu_after = {k: CpuSample.take(v) for k, v in watched.items()}
            await asyncio.sleep(1.5)
            rows_after = await seq_rows(databases)
            tables_after = await seq_tables(databases)
            statuses: dict[str, int] = {}
            for r, _ in items:
                s = (
                    outcomes.bodies.get(r, {}).get("data", {}).get("status")
                    or outcomes.bodies.get(r, {}).get("data", {}).get("reason")
                    or "missing"
                )
                statuses[s] = statuses.get(s, 0) + 1
            say(
                f"burst: {args.burst} erasures drained in {burst_s:.1f} s{'' if ok else ' (TIMED OUT)'}; statuses {statuses}; approvals refused: {len(approver.refused)} {sorted(set(approver.refused.values()))[:3]}"
            )
            for detail in sorted(
                {str(b["data"].get("detail")) for b in outcomes.bodies.values() if b["type"] == "dsar.rejected"}
            )[:3]:
                say(f"  rejected: {detail}")
            rows = sum(rows_after.values()) - sum(rows_before.values())
            figures |= {"burst_s": round(burst_s, 2), "burst_ok": ok and set(statuses) <= {"completed", "completed_with_retention"},
                        "seq_rows_per_erasure": round(rows / args.burst)}  # fmt: skip
            say(f"rows read by sequential scans: {rows:,} over the burst, {rows / args.burst:,.0f} per erasure")
            grown = sorted(((tables_after[k] - tables_before.get(k, 0), k) for k in tables_after), reverse=True)[:8]
            for delta, (db, table) in grown:
                if delta:
                    print(f"    {delta / args.burst:>10,.0f} rows/erasure  {db}.{table}")
            cpu = {k: cpu_between(cpu_before[k], cpu_after[k]) for k in watched}
            total = sum(cpu.values())
            figures["cpu_ms_per_erasure"] = {k: round(v * 1000 / args.burst, 1) for k, v in cpu.items()}
            figures["cpu_ms_per_erasure_total"] = round(total * 1000 / args.burst, 1)
            say(f"CPU over the burst: {total:.1f} s, {total * 1000 / args.burst:.0f} ms per erasure")
            for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]):
                print(
                    f"    {k:<11} {v:6.1f} s  {v / total * 100 if total else 0:5.1f} %  {v * 1000 / args.burst:6.1f} ms/erasure"
                )

            # --- steady
            sent: dict[str, float] = {}
            interval = 1.0 / args.rate
            t0 = time.perf_counter()
            k = 0
            while time.perf_counter() - t0 < args.steady_seconds:
                rid, raw = erasure(number(next(pick)))
                sent[rid] = time.perf_counter()
                await portal.send_many(DSAR_REQUESTS, [(rid, raw)])
                k += 1
                await asyncio.sleep(max(0.0, t0 + k * interval - time.perf_counter()))
            ok = await outcomes.wait(list(sent), 300)
            latencies = [(outcomes.completed[r] - t) * 1000 for r, t in sent.items() if r in outcomes.completed]
            to_wait = [(outcomes.awaiting[r] - t) * 1000 for r, t in sent.items() if r in outcomes.awaiting]
            after = [
                (outcomes.completed[r] - approver.approved[r]) * 1000
                for r in sent
                if r in approver.approved and r in outcomes.completed
            ]
            p99 = pct(latencies, 0.99)
            say(
                f"steady: {len(sent)} erasures at {args.rate:g}/s; completed {len(latencies)}; p50 {pct(latencies, 0.5):.0f} ms,"
                f" p99 {p99:.0f} ms, mean {statistics.mean(latencies) if latencies else float('nan'):.0f} ms{'' if ok else ' (SOME TIMED OUT)'}"
            )
            say(
                f"  submitted -> awaiting approval p50 {pct(to_wait, 0.5):.0f} ms p99 {pct(to_wait, 0.99):.0f} ms; approved -> completed p50 {pct(after, 0.5):.0f} ms p99 {pct(after, 0.99):.0f} ms"
            )
            figures |= {"steady_p50_ms": round(pct(latencies, 0.5)), "steady_p99_ms": round(p99), "steady_ok": ok}
            if not ok:
                await explain_missing(suite, [r for r in sent if r not in outcomes.completed], outcomes, approver)

            # --- access package of a heavy subject
            if args.heavy:
                rid, raw = erasure(number(0), kind="access")
                t = time.perf_counter()
                await portal.send_many(DSAR_REQUESTS, [(rid, raw)])
                done = await outcomes.wait([rid], 300)
                access_s = outcomes.completed.get(rid, time.perf_counter()) - t
                body = outcomes.bodies.get(rid, {}).get("data", {})
                size = None
                if body.get("package"):
                    async with httpx.AsyncClient(headers=suite.as_caller("portal"), timeout=120) as http:
                        size = len((await http.get(body["package"]["uri"])).content)
                outcome = body.get("status") or f"rejected: {body.get('reason')}, {body.get('detail')}"
                say(
                    f"access package of a heavy subject: {access_s:.2f} s ({outcome}, {size or 0:,} bytes){'' if done else ' TIMED OUT'}"
                )
                figures["access_s"] = round(access_s, 2) if size else None  # no package, no figure

            # --- withdrawal -> consent.changed
            figures["withdrawal_p99_ms"] = await withdrawals(portal, [number(i) for i in pool[: args.withdrawals]])

        await outcomes.stop()
        await approver.stop()
        figures["rss_mb"] = {name: round(max(peak_rss_mb(pid) for pid in group)) for name, group in pids.items()}
        say(f"peak RSS (VmHWM) per service: {figures['rss_mb']}")
    finally:
        await suite.close()
    return figures


async def withdrawals(portal: Producer, numbers: list[str]) -> float:
    def event(kind: str, number: str) -> bytes:
        data = {"customer_number": number, "purpose": "direct_marketing", "channel": "portal", "at": datetime.now(UTC)}
        return CloudEvent.new(kind, "urn:system:portal", data).to_bytes()

    reader = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, group_id=None)
    await reader.start()
    while not reader.partitions_for_topic(CONSENT_EVENTS):
        await reader._client.force_metadata_update()
    parts = [TopicPartition(CONSENT_EVENTS, p) for p in sorted(reader.partitions_for_topic(CONSENT_EVENTS) or [])]
    reader.assign(parts)
    for tp, offset in (await reader.end_offsets(parts)).items():
        reader.seek(tp, offset)
    seen: dict[tuple[str, str], float] = {}
    wanted = set(numbers)

    async def read() -> None:
        while True:
            batch = await reader.getmany(timeout_ms=50)
            now = time.perf_counter()
            for records in batch.values():
                for r in records:
                    body = json.loads(r.value)["data"]
                    if body["customer_number"] in wanted and body["purpose"] == "direct_marketing":
                        seen.setdefault((body["customer_number"], body["state"]), now)

    task = asyncio.create_task(read())
    try:
        await portal.send_many(CONSENT_INBOUND, [(n, event("consent.given", n)) for n in numbers])
        # a customer the seed already gave this consent changes nothing, and no notice comes
        deadline = time.perf_counter() + 60
        while time.perf_counter() < deadline:
            if sum((n, "granted") in seen for n in numbers) >= 0.9 * len(numbers):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)
        sent: dict[str, float] = {}
        for n in numbers:
            sent[n] = time.perf_counter()
            await portal.send_many(CONSENT_INBOUND, [(n, event("consent.withdrawn", n))])
            await asyncio.sleep(max(0.0, 0.05 - (time.perf_counter() - sent[n])))
        deadline = time.perf_counter() + 60
        while time.perf_counter() < deadline:
            if all((n, "withdrawn") in seen for n in numbers):
                break
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        await reader.stop()
    latencies = [(seen[(n, "withdrawn")] - t) * 1000 for n, t in sent.items() if (n, "withdrawn") in seen]
    p99 = pct(latencies, 0.99)
    say(
        f"withdrawal -> consent.changed: {len(latencies)}/{len(numbers)} seen; p50 {pct(latencies, 0.5):.0f} ms, p99 {p99:.0f} ms"
    )
    return round(p99)


def report(all_figures: list[dict[str, Any]], burst: int) -> None:
    for f in all_figures:
        n = f"{f['customers']:,} customers"
        result(f"seeding ({n}, {f['events']:,} events): publish", f["seed_s"], "s")
        result(f"seeding ({n}): publish rate", f["seed_rate"], "events/s")
        result(f"seeding ({n}): ingested by the suite (lag 0)", f["ingest_s"], "s")
        result(f"seeding ({n}): ingest rate", f["ingest_rate"], "events/s")
        result(f"{burst:,} erasures at once drained, approval included ({n})", f["burst_s"], "s", "< 20 s",
               f["burst_ok"] and f["burst_s"] < 20)  # fmt: skip
        result(f"steady erasures p50 ({n})", f["steady_p50_ms"], "ms")
        result(
            f"steady erasures p99 ({n})",
            f["steady_p99_ms"],
            "ms",
            "< 500 ms",
            f["steady_ok"] and f["steady_p99_ms"] < 500,
        )
        result(f"rows read by sequential scans per erasure, all databases ({n})", f["seq_rows_per_erasure"], "rows", "< 1,000",
               f["seq_rows_per_erasure"] < 1000)  # fmt: skip
        result(f"CPU per erasure, all processes ({n})", f["cpu_ms_per_erasure_total"], "ms")
        for proc, ms in sorted(f["cpu_ms_per_erasure"].items()):
            result(f"CPU per erasure: {proc} ({n})", ms, "ms")
        if "access_s" in f:
            access = f["access_s"]
            what = f"{f['heavy_readings']:,} readings, 20 recordings"
            result(
                f"access package, heavy subject of {what} ({n})",
                access,
                "s",
                "< 1.5 s",
                access is not None and access < 1.5,
            )
        result(
            f"withdrawal -> consent.changed p99 ({n})",
            f["withdrawal_p99_ms"],
            "ms",
            "< 100 ms",
            f["withdrawal_p99_ms"] < 100,
        )
        result(f"idle CPU of the services, all together ({n})", round(sum(f["idle_cpu_ms_per_s"].values())), "ms/s")
        for name, mb in sorted(f["rss_mb"].items()):
            result(f"peak RSS {name} ({n})", mb, "MB", "< 150 MB", mb < 150)
    if len(all_figures) >= 2:
        small, big = all_figures[0], all_figures[-1]
        label = f"{big['customers']:,} vs {small['customers']:,}"
        for key, what in (
            ("seq_rows_per_erasure", "rows read"),
            ("cpu_ms_per_erasure_total", "CPU"),
            ("steady_p99_ms", "steady p99"),
        ):
            ratio = round(big[key] / small[key], 2) if small[key] else None
            result(f"cost ratio {label}: {what}", ratio, "x", "<= 1.2x", ratio is not None and ratio <= 1.2)


def own_signing_keys() -> None:
    """Signing keys of this run only, as `make up` makes them per installation. The harness's
    test keys are shared by every test suite on the machine: with them, another suite's
    coordinator running at the same time would take this run's requests (dsar.requests.v1 is one
    topic), send its own tasks, and this run's stores would obey them."""
    from lampo.signing import new_key_pair
    from lampo.testing import TEST_SIGNERS

    keys = {name: new_key_pair() for name in (*TEST_SIGNERS, "portal")}  # the portal signs, nobody trusts it
    harness.signing_key_for = lambda name: keys[name][0]  # type: ignore[attr-defined]
    harness.trusted_keys_for = lambda *extra: {name: [keys[name][1]] for name in TEST_SIGNERS}  # type: ignore[attr-defined]


async def main(args: argparse.Namespace) -> None:
    own_signing_keys()
    # stopped from outside (timeout, kill): stop the services and drop their databases all the same
    main_task = asyncio.current_task()
    assert main_task
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    say(f"register sizes {sizes}; months {args.months}; heavy {args.heavy} x {args.heavy_readings:,} readings")
    all_figures = []
    for customers in sizes:
        started = time.perf_counter()
        all_figures.append(await one_size(args, customers))
        say(f"== {customers:,} customers took {time.perf_counter() - started:.0f} s in all")
        print(json.dumps(all_figures[-1]), flush=True)
    report(all_figures, args.burst)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=os.environ.get("LAMPO_BENCH_SIZES", "10000"))
    parser.add_argument("--months", type=int, default=int(os.environ.get("LAMPO_BENCH_MONTHS", "36")))
    parser.add_argument("--heavy", type=int, default=int(os.environ.get("LAMPO_BENCH_HEAVY", "3")))
    parser.add_argument(
        "--heavy-readings", type=int, default=int(os.environ.get("LAMPO_BENCH_HEAVY_READINGS", "50000"))
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--burst-timeout", type=float, default=900)
    parser.add_argument("--steady-seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--withdrawals", type=int, default=200)
    parser.add_argument(
        "--replicas", type=int, default=int(os.environ.get("LAMPO_BENCH_REPLICAS", "1")),
        help="instances of every service in its group (`make up REPLICAS=n`); CPU and RSS cover them all",
    )  # fmt: skip
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args()))
