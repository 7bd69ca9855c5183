"""An access package for a heavy subject: 50,000 consumption rows and 20 call recordings.

    .venv/bin/python bench/access/run.py [--rows 50000] [--recordings 20] [--audio-kb 300]

1. Starts the suite as processes (tests/suite.py: every installed service with its own database
   and consumer group, as in the system tests) on the running broker and database.
2. Seeds one synthetic customer (identity code in the 900-999 test range) in every store, with 50
   metering points, ``--rows`` daily ``consumption.reported`` readings spread over them and
   ``--recordings`` ``call.recorded`` events of ``--audio-kb`` KB of stand-in audio each; waits
   until the stores have processed them (their /metrics counters).
3. Measured: ``--requests`` access requests (3), one after another, each on dsar.requests.v1
   until ``dsar.completed`` with the package (the coordinator fans out, every store seals its
   result, results travel in parts, the package is built, encrypted and stored); the median and
   the worst and the first (cold caches) are reported, the goal judged on the median. Then ``lampo dsar package`` writing the plaintext ZIP (a CLI
   process: start-up included). The ZIP is opened and checked: every consumption row and every
   recording, byte for byte.
4. Baseline, same run: read the same rows and audio straight from the registry's and recordings'
   databases with asyncpg (no decryption, no Kafka, no checks) and write a ZIP in memory: the
   floor for "read it all and pack it".

Goal: the access request completes in under 2 s. Synthetic data only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import random
import re
import statistics
import sys
import tempfile
import time
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from suite import Suite, installed, launch  # noqa: E402

from lampo.contracts.catalog import DSAR_EVENTS, RECORDINGS_INBOUND, REGISTRY_INBOUND  # noqa: E402
from lampo.contracts.envelope import CloudEvent  # noqa: E402
from lampo.db.pool import server_url_of  # noqa: E402
from lampo.synthetic import Customer, new_customer, processed, seed, submit, submitted  # noqa: E402
from lampo.testing import PG_URL, Producer, TopicReader, customer_upserted, eventually  # noqa: E402

METERING_POINTS = 50
NEEDED = ["registry", "billing", "recordings", "consent", "retention", "dsar"]


def result(figure: str, value: float, unit: str, baseline: float | None, goal: str | None, met: bool | None) -> None:
    line = {"bench": "access", "figure": figure, "value": round(value, 3), "unit": unit}
    print("RESULT " + json.dumps({**line, "baseline": baseline, "goal": goal, "met": met}))


def heavy_upsert(customer: Customer) -> CloudEvent:
    event = customer_upserted(customer.number, customer.n)
    event.data["metering_points"] = [f"MUL-{customer.n:06d}-{m:02d}" for m in range(METERING_POINTS)]
    return event


async def wait_processed(suite: Suite, service: str, topic: str, at_least: int) -> None:
    """Until the service's /metrics count ``at_least`` records of ``topic`` processed."""

    async def done() -> bool:
        try:
            return await processed(suite[service].url, topic) >= at_least
        except httpx.HTTPError:  # a busy service may answer /metrics late; ask again
            return False

    await eventually(done, timeout=900, interval=1.0)


async def load(suite: Suite, customer: Customer, rows: int, recordings: int, audio_kb: int) -> list[bytes]:
    """Every store holds the customer; then the readings and recordings; returns the audio sent."""
    await seed(suite.urls, customer)
    registry_before = await processed(suite["registry"].url, REGISTRY_INBOUND)
    recordings_before = await processed(suite["recordings"].url, RECORDINGS_INBOUND)
    audio = [customer.audio] + [random.randbytes(audio_kb * 1024) for _ in range(recordings - 1)]
    first_day = date(2020, 1, 1)
    async with Producer() as systems:
        await systems.send(REGISTRY_INBOUND, customer.number, heavy_upsert(customer))
        items: list[tuple[str | None, bytes]] = []
        for i in range(rows):
            day = first_day + timedelta(days=i // METERING_POINTS)
            reading = {
                "customer_number": customer.number,
                "metering_point": f"MUL-{customer.n:06d}-{i % METERING_POINTS:02d}",
                "period_start": day.isoformat(),
                "period_end": day.isoformat(),
                "energy_mwh": f"{0.02 + (i % 97) / 1000:.3f}",
                "annual_forecast_mwh": None,
            }
            event = CloudEvent.new("consumption.reported", "urn:system:metering", reading)
            items.append((customer.number, event.to_bytes()))
            if len(items) == 5000:
                await systems.send_many(REGISTRY_INBOUND, items)
                items = []
        if items:
            await systems.send_many(REGISTRY_INBOUND, items)
        now = datetime.now(UTC)
        for k, clip in enumerate(audio[1:], start=1):
            data = {
                "customer_number": customer.number,
                "recording_id": f"{customer.recording_id}-{k}",
                "started_at": (now - timedelta(days=k)).isoformat(),
                "duration_s": len(clip) / 16_000,
                "media_type": "audio/wav",
                "audio_base64": base64.b64encode(clip).decode(),
            }
            await systems.send(
                RECORDINGS_INBOUND, customer.number, CloudEvent.new("call.recorded", "urn:system:telephony", data)
            )

    await wait_processed(suite, "registry", REGISTRY_INBOUND, registry_before + rows + 1)
    await wait_processed(suite, "recordings", RECORDINGS_INBOUND, recordings_before + recordings - 1)
    return audio


async def baseline(suite: Suite, customer: Customer) -> tuple[float, int]:
    """Read the rows and the audio straight from the two databases and zip them: no Kafka, no crypto."""
    databases = dict(zip(suite.services, suite.databases, strict=True))
    started = time.perf_counter()
    registry = await asyncpg.connect(server_url_of(PG_URL, databases["registry"]))
    recordings = await asyncpg.connect(server_url_of(PG_URL, databases["recordings"]))
    try:
        consumption = await registry.fetch(
            "SELECT metering_point, period_start, period_end, energy_mwh, annual_forecast_mwh, source_system, origin,"
            " legal_basis FROM consumption WHERE customer_number = $1 ORDER BY metering_point, period_start",
            customer.number,
        )
        audio = await recordings.fetch(
            "SELECT recording_id, audio FROM recordings WHERE customer_number = $1", customer.number
        )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("data/consumption.json", json.dumps([dict(r) for r in consumption], default=str))
            for row in audio:
                archive.writestr(f"recordings/{row['recording_id']}.wav", bytes(row["audio"]), zipfile.ZIP_STORED)
        return time.perf_counter() - started, len(consumption)
    finally:
        await registry.close()
        await recordings.close()


async def ours(events: TopicReader, request_id: str, dsar_url: str) -> dict[str, Any]:
    """``dsar.completed`` for the request from this run's coordinator (its package at this run's
    dsar address): another coordinator on the same broker (another bench, a `make up` suite)
    may answer the same request with its own participants."""

    def match(record: Any) -> bool:
        body = json.loads(record.value)
        data = body["data"]
        return bool(
            body["type"] == "dsar.completed"
            and data.get("request_id") == request_id
            and "registry" in data.get("results", {})
            and str((data.get("package") or {}).get("uri", "")).startswith(f"{dsar_url}/")
        )

    [record] = (await events.wait_for(match, timeout=300))[:1]
    body: dict[str, Any] = json.loads(record.value)
    return body


async def per_hop(suite: Suite, request_id: str) -> list[str]:
    """Where the request's time went, from the coordinator's own records: when each
    participant's task was sent and its answer (its last part) applied, the result parts each
    sent, and the completion (the package built and stored). Pseudonymous ids only."""
    databases = dict(zip(suite.services, suite.databases, strict=True))
    conn = await asyncpg.connect(server_url_of(PG_URL, databases["dsar"]))
    try:
        created = await conn.fetchval("SELECT created_at FROM requests WHERE request_id = $1", request_id)
        tasks = await conn.fetch(
            "SELECT participant, first_sent_at, finished_at, result_parts FROM tasks WHERE request_id = $1"
            " ORDER BY finished_at",
            request_id,
        )
        done = await conn.fetchval(
            "SELECT at FROM transitions WHERE request_id = $1 AND to_status = 'completed'", request_id
        )
    finally:
        await conn.close()

    def since(at: datetime) -> float:
        return (at - created).total_seconds()

    lines = [
        f"{t['participant']:<11} task sent +{since(t['first_sent_at']):.2f}, answered +{since(t['finished_at']):.2f}"
        + (f" ({t['result_parts']} parts)" if t["result_parts"] else "")
        for t in tasks
    ]
    return [*lines, f"completed   +{since(done):.2f} (package built, encrypted and stored)"]


def spans_of(suite: Suite, trace_id: str) -> list[str]:
    """The request's trace, span names per service: how many, when the first began and the last
    ended (seconds from the trace's first span), and their summed duration."""
    found: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for span in suite.otlp.spans:
        if span.trace_id != trace_id:
            continue
        times = dict(re.findall(r"(start_time_unix_nano|end_time_unix_nano): (\d+)", span.text))
        if len(times) == 2:
            key = (span.service.removeprefix("lampo-"), span.name)
            found.setdefault(key, []).append((int(times["start_time_unix_nano"]), int(times["end_time_unix_nano"])))
    if not found:
        return []
    zero = min(start for spans in found.values() for start, _ in spans)
    lines = ["spans of its trace (count, first start, last end, summed duration):"]
    for (service, name), spans in sorted(found.items(), key=lambda kv: min(s for s, _ in kv[1])):
        first, last = min(s for s, _ in spans), max(e for _, e in spans)
        busy = sum(e - s for s, e in spans)
        lines.append(
            f"  {service:<10} {name:<28} x{len(spans):<3} +{(first - zero) / 1e9:.2f} .. +{(last - zero) / 1e9:.2f}"
            f" ({busy / 1e9:.2f} s)"
        )
    return lines


def readings(value: Any) -> int:
    """Consumption readings anywhere in a data file: records with an ``energy_mwh``."""
    if isinstance(value, dict):
        return 1 if "energy_mwh" in value else sum(readings(v) for v in value.values())
    if isinstance(value, list):
        return sum(readings(v) for v in value)
    return 0


def check(blob: bytes, rows: int, audio: list[bytes]) -> None:
    archive = zipfile.ZipFile(io.BytesIO(blob))
    names = archive.namelist()
    found = sum(readings(json.loads(archive.read(n))) for n in names if n.startswith("data/") and n.endswith(".json"))
    assert found == rows, f"package holds {found} consumption readings, {rows} were stored; files: {names}"
    clips = sorted(archive.read(n) for n in names if n.startswith("recordings/"))
    assert clips == sorted(audio), f"package holds {len(clips)} recordings, {len(audio)} were stored (or bytes differ)"


async def main(args: argparse.Namespace) -> None:
    missing = [s for s in NEEDED if s not in installed()]
    if missing:
        raise SystemExit(f"services not installed: {', '.join(missing)} (run `make install`)")
    logs = ROOT / "bench" / "out" / "access-logs"  # each service's log, kept for a look after the run
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        suite = await launch(NEEDED, logs)
        try:
            customer = new_customer()
            started = time.perf_counter()
            audio = await load(suite, customer, args.rows, args.recordings, args.audio_kb)
            print(
                f"seeded 1 customer: {args.rows:,} consumption rows over {METERING_POINTS} metering points,"
                f" {len(audio)} recordings of ~{args.audio_kb} KB, in {time.perf_counter() - started:.1f} s"
            )
            times: list[float] = []
            for _ in range(args.requests):  # one after another, each answered in full by every store
                async with TopicReader(DSAR_EVENTS) as events:
                    started = time.perf_counter()
                    request_id = await submit(submitted("access", customer.number))
                    completed = await ours(events, request_id, suite["dsar"].url)
                    times.append(time.perf_counter() - started)
                assert completed["data"]["status"] == "completed", completed["data"]
            elapsed, worst = statistics.median(times), max(times)
            hops = await per_hop(suite, request_id)
            await asyncio.sleep(1.5)  # the services export their last spans
            hops += spans_of(suite, completed["data"]["trace_id"])
            out = Path(tmp) / "package.zip"
            started = time.perf_counter()
            cli = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "lampo"), "dsar", "package", request_id, "--out", str(out),
                env=suite["dsar"].env, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, stderr = await cli.communicate()
            written = time.perf_counter() - started
            assert cli.returncode == 0, stderr.decode()
            blob = out.read_bytes()
            check(blob, args.rows, audio)
            floor, read_rows = await baseline(suite, customer)
            assert read_rows == args.rows
        finally:
            await suite.close()
    print(
        f"access request -> dsar.completed with the package: median {elapsed:.2f} s, worst {worst:.2f} s"
        f" of {len(times)} ({', '.join(f'{t:.2f}' for t in times)})   (goal < 2 s)"
    )
    print(f"lampo dsar package --out (CLI process, decrypt, write {len(blob) / 1e6:.1f} MB ZIP): {written:.2f} s")
    print(
        f"baseline (asyncpg read of the same rows and audio, zip in memory): {floor:.2f} s; ratio {elapsed / floor:.1f}x"
    )
    print(f"package checked: {args.rows:,} consumption rows, {len(audio)} recordings byte for byte")
    print("per hop of the last request (the coordinator's records; seconds from the request's arrival):")
    for line in hops:
        print(f"  {line}")
    result(
        f"access request to completed package, median of {len(times)}",
        elapsed,
        "s",
        round(floor, 3),
        "< 2 s",
        elapsed < 2,
    )
    result(f"access request to completed package, worst of {len(times)}", worst, "s", None, None, None)
    result("access request to completed package, the first (cold)", times[0], "s", None, None, None)
    result("package written by the CLI", written, "s", None, None, None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--recordings", type=int, default=20)
    parser.add_argument("--audio-kb", type=int, default=300)
    parser.add_argument("--requests", type=int, default=3, help="access requests measured one after another")
    asyncio.run(main(parser.parse_args()))
