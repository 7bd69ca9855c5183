"""Peak memory (RSS) of every service under load, each its own process as in production.

    .venv/bin/python bench/memory/run.py [--customers 20000] [--rows 50000] [--requests 20]

Starts the suite as processes (tests/suite.py) on the running broker and database, then loads it
the way the company's systems would, all synthetic:

- the CRM: ``--customers`` ``customer.upserted`` events at once (the registry's ingest);
- the portal: a consent and a withdrawal for each of the first 1,000 customers (consent,
  and the registry's profiling following ``consent.events.v1``);
- billing: an invoice and a payment for each of the first 2,000 customers;
- telephony and metering: one heavy customer with ``--rows`` consumption readings and 20 call
  recordings (bench/access's load);
- the portal again: ``--requests`` access requests and as many erasures (approved), plus the
  heavy customer's access package (the coordinator holds every part of it).

While it runs, each service's resident set is read from /proc every 0.2 s; at the end its peak
(VmHWM, the kernel's high-water mark) is reported beside the baseline: the same service's RSS
idle, just after start-up. Goal: every service under 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from suite import Suite, installed, launch  # noqa: E402

from lampo.contracts.catalog import BILLING_INBOUND, CONSENT_INBOUND, DSAR_EVENTS, DSAR_REQUESTS, REGISTRY_INBOUND  # noqa: E402
from lampo.contracts.envelope import CloudEvent  # noqa: E402
from lampo.synthetic import approve, new_customer, submitted  # noqa: E402
from lampo.testing import Producer, TopicReader, customer_upserted, unique  # noqa: E402

GOAL_MB = 150.0


def access_bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_access", ROOT / "bench" / "access" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Sampler:
    """RSS of every service process every 0.2 s; peak from the kernel's VmHWM at the end."""

    def __init__(self, suite: Suite) -> None:
        self.pids = {name: s.process.pid for name, s in suite.services.items() if s.process}
        self.idle = {name: status_kb(pid, "VmRSS") / 1024 for name, pid in self.pids.items()}
        self.sampled = dict(self.idle)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            for name, pid in self.pids.items():
                self.sampled[name] = max(self.sampled[name], status_kb(pid, "VmRSS") / 1024)
            await asyncio.sleep(0.2)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def peaks(self) -> dict[str, float]:
        if self._task:
            self._task.cancel()
        return {name: max(self.sampled[name], status_kb(pid, "VmHWM") / 1024) for name, pid in self.pids.items()}


async def load(suite: Suite, args: argparse.Namespace, access: Any) -> None:
    prefix = unique("mem")
    numbers = [f"{prefix}-{i}" for i in range(args.customers)]
    now = datetime.now(UTC)
    started = time.perf_counter()
    async with Producer() as systems:
        for low in range(0, len(numbers), 5000):
            batch = [
                (c, customer_upserted(c, 10_000 + i).to_bytes()) for i, c in enumerate(numbers[low : low + 5000], low)
            ]
            await systems.send_many(REGISTRY_INBOUND, batch)
        consents: list[tuple[str | None, bytes]] = []
        for c in numbers[:1000]:
            for kind in ("consent.given", "consent.withdrawn"):
                data = {"customer_number": c, "purpose": "profiling", "channel": "portal", "at": now.isoformat()}
                consents.append((c, CloudEvent.new(kind, "urn:system:portal", data).to_bytes()))
        await systems.send_many(CONSENT_INBOUND, consents)
        bills: list[tuple[str | None, bytes]] = []
        for i, c in enumerate(numbers[:2000]):
            invoice = f"INV-{prefix}-{i}"
            issued = {
                "customer_number": c, "invoice_number": invoice, "issued_at": now.isoformat(),
                "due_date": (now + timedelta(days=14)).date().isoformat(), "total_eur": "120.50",
                "lines": [{"text": "Kaukolämpö 11/2026", "amount_eur": "120.50"}],
            }  # fmt: skip
            paid = {"customer_number": c, "invoice_number": invoice, "paid_at": now.isoformat(), "amount_eur": "120.50"}
            bills.append((c, CloudEvent.new("invoice.issued", "urn:system:billing", issued).to_bytes()))
            bills.append((c, CloudEvent.new("payment.received", "urn:system:billing", paid).to_bytes()))
        await systems.send_many(BILLING_INBOUND, bills)
    await access.wait_processed(suite, "registry", REGISTRY_INBOUND, args.customers)
    await access.wait_processed(suite, "consent", CONSENT_INBOUND, 2000)
    await access.wait_processed(suite, "billing", BILLING_INBOUND, 4000)
    print(
        f"ingest: {args.customers:,} customers, 2,000 consent events, 4,000 billing events in {time.perf_counter() - started:.1f} s"
    )

    heavy = new_customer()
    started = time.perf_counter()
    await access.load(suite, heavy, args.rows, 20, 300)
    print(f"heavy customer: {args.rows:,} consumption rows, 20 recordings in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    async with TopicReader(DSAR_EVENTS) as events, Producer() as portal:
        ids = []
        for i in range(args.requests):
            for kind in ("access", "erasure"):
                event = submitted(kind, numbers[i] if kind == "access" else numbers[args.requests + i])
                ids.append((kind, str(event.data["request_id"])))
                await portal.send(DSAR_REQUESTS, ids[-1][1], event)
        heavy_request = submitted("access", heavy.number)
        await portal.send(DSAR_REQUESTS, str(heavy_request.data["request_id"]), heavy_request)
        for kind, request_id in ids:
            if kind == "erasure":
                await approve(request_id)
        await access.ours(events, str(heavy_request.data["request_id"]))
        for _, request_id in ids:
            await access.ours(events, request_id)
    print(
        f"requests: {args.requests} access + {args.requests} erasures + the heavy access package in {time.perf_counter() - started:.1f} s"
    )


async def main(args: argparse.Namespace) -> None:
    names = installed()
    access = access_bench()
    logs = ROOT / "bench" / "out" / "memory-logs"  # each service's log, kept for a look after the run
    logs.mkdir(parents=True, exist_ok=True)
    suite = await launch(names, logs)
    try:
        await asyncio.sleep(2)  # start-up settled: the idle baseline
        sampler = Sampler(suite)
        sampler.start()
        await load(suite, args, access)
        await asyncio.sleep(2)
        peaks = sampler.peaks()
    finally:
        await suite.close()
    print(f"\n{'service':<12} {'idle MB':>8} {'peak MB':>8} {'ratio':>6}   goal < {GOAL_MB:.0f} MB")
    for name in names:
        print(f"{name:<12} {sampler.idle[name]:8.1f} {peaks[name]:8.1f} {peaks[name] / sampler.idle[name]:6.2f}x")
    for name in names:
        line = {"bench": "memory", "figure": f"peak RSS {name}", "value": round(peaks[name], 1), "unit": "MB"}
        extra = {"baseline": round(sampler.idle[name], 1), "goal": f"< {GOAL_MB:.0f} MB", "met": peaks[name] < GOAL_MB}
        print("RESULT " + json.dumps({**line, **extra}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=20)
    asyncio.run(main(parser.parse_args()))
