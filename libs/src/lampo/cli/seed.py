"""``lampo seed``: a synthetic register of realistic size, published through the public inbound
topics as the company's systems would send it (CRM, metering, billing, telephony, portal).

Per customer: one ``customer.upserted`` (people, some entrepreneurs and organisations; identity
codes in the 900-999 test range of ``lampo.testing.synthetic_identity_code``, e-mail at
example.fi), monthly ``consumption.reported`` readings for ``--months``, ``--invoices``
``invoice.issued``; some customers a short ``call.recorded`` and a ``consent.given``. A few heavy
subjects (entrepreneurs: people with a business and many metering points) get daily readings (the contract's periods are
calendar dates, so a reading per day and metering point is the finest there is) up to
``--heavy-readings`` each, and 20 recordings. Everything follows from ``--seed`` and ``--as-of``:
the same options publish the same records. Keys per contract (the customer number); a customer's
upsert goes before its readings on the same partition.

``--wait`` then waits until the services' consumer groups (``<base>.<topic>``, bases from
``--group``, default the ones ``make up`` runs) have no lag on the topics seeded, and reports the
ingest time apart from the publishing time.

Heavy imports live inside the functions: the CLI loads this module on every call.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

import typer

# Which inbound topics each service reads (retention observes three), and its consumer group
# base as `make up` runs it (``lampo-<service>``; a group per topic, lampo.messaging.topics).
READS = {
    "registry": ["registry.inbound.v1"],
    "billing": ["billing.inbound.v1"],
    "recordings": ["recordings.inbound.v1"],
    "consent": ["consent.inbound.v1"],
    "retention": ["registry.inbound.v1", "billing.inbound.v1", "recordings.inbound.v1"],
}
DEFAULT_GROUPS = [f"{service}=lampo-{service}" for service in READS]
_BUSINESS_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2)
_FIRST = ["Aino", "Eino", "Helmi", "Väinö", "Kerttu", "Onni", "Siiri", "Toivo", "Elli", "Lauri", "Venla", "Juho"]
_LAST = ["Virtanen", "Korhonen", "Mäkinen", "Nieminen", "Hämäläinen", "Laine", "Heikkinen", "Koskinen", "Järvinen"]
_TESTI_COMPANY = ["Testi Oy", "Koe Ky", "Esimerkki Oy", "Malli Tmi", "Demo Ab"]


@dataclass(frozen=True)
class Plan:
    customers: int
    months: int
    invoices: int
    heavy: int
    heavy_readings: int
    recordings_per_mille: int
    consents_per_mille: int
    seed: int
    as_of: date

    def heavy_points(self) -> int:
        """Metering points of a heavy subject: daily readings over the months, up to heavy_readings."""
        days = max(1, self.months * 30)
        return max(1, -(-self.heavy_readings // days))

    def heavy_days(self) -> int:
        return min(max(1, self.months * 30), self.heavy_readings)


def business_id(n: int) -> str:
    """A valid Finnish business ID (Y-tunnus), one per ``n`` below 9,000,000: no two ``n`` share one.

    The last digit weighs 2, so of the ten last digits after a six-digit prefix at most one gives
    remainder 1 (no check digit): every prefix has nine valid IDs, and ``n`` picks prefix and slot.
    """
    prefix, slot = divmod(n, 9)
    head = f"{prefix:06d}"
    partial = sum(int(d) * w for d, w in zip(head, _BUSINESS_ID_WEIGHTS[:6], strict=True))
    valid = [d for d in range(10) if (partial + 2 * d) % 11 != 1]
    last = valid[slot]
    remainder = (partial + 2 * last) % 11
    return f"{head}{last}-{0 if remainder == 0 else 11 - remainder}"


def _envelope(rng: Any, type_: str, source: str, time: str, data: dict[str, Any]) -> dict[str, Any]:
    import uuid

    return {
        "specversion": "1.0",
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "source": source,
        "type": type_,
        "time": time,
        "datacontenttype": "application/json",
        "data": data,
    }


def _months_back(as_of: date, months: int) -> list[tuple[date, date]]:
    """The ``months`` whole calendar months before ``as_of``'s month, oldest first."""
    from datetime import timedelta

    periods = []
    first = as_of.replace(day=1)
    for _ in range(months):
        end = first - timedelta(days=1)
        first = end.replace(day=1)
        periods.append((first, end))
    return periods[::-1]


def records(plan: Plan) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(topic, key, CloudEvent as a dict) in publishing order; deterministic for the plan."""
    import base64
    import random
    from datetime import timedelta

    from lampo.contracts.catalog import BILLING_INBOUND, CONSENT_INBOUND, RECORDINGS_INBOUND, REGISTRY_INBOUND
    from lampo.testing import customer_upserted, synthetic_identity_code

    data: dict[str, Any]
    rng = random.Random(plan.seed)  # noqa: S311 - synthetic data, reproducible by design
    months = _months_back(plan.as_of, plan.months)
    stamp = f"{plan.as_of.isoformat()}T06:00:00+00:00"
    heavy = set(range(0, plan.customers, max(1, plan.customers // max(1, plan.heavy))))
    heavy = set(sorted(heavy)[: plan.heavy])
    for i in range(plan.customers):
        # synthetic_identity_code is unique below 2 M; from 100,000 up, clear of the 10,000-30,000
        # that lampo.synthetic's test customers use (the same code would make them one subject)
        n = 100_000 + (plan.seed * plan.customers + i) % 1_900_000
        number = f"S{plan.seed}-{i:07d}"
        upsert = customer_upserted(number, n).data  # the test helper's person, then varied
        person = upsert["person"] | {
            "first_names": rng.choice(_FIRST),
            "last_name": rng.choice(_LAST),
            "personal_identity_code": synthetic_identity_code(n),
            "gender": rng.choice(["1", "2"]),
        }
        kind = "entrepreneur" if i in heavy else rng.choices(["person", "entrepreneur", "organisation"], [90, 6, 4])[0]
        points = [f"MP-{plan.seed}-{i:07d}-{p:03d}" for p in range(plan.heavy_points() if i in heavy else 1)]
        upsert |= {"kind": kind, "metering_points": points, "account": {"username": f"asiakas.{plan.seed}.{i}"}}
        upsert["contact"] = upsert["contact"] | {"email": f"asiakas.{plan.seed}.{i}@example.fi"}
        if kind != "person":
            upsert["organisation"] = {"name": f"{rng.choice(_TESTI_COMPANY)} {i}", "business_id": business_id(n)}
        if kind == "organisation":
            upsert["person"] = None
        else:
            upsert["person"] = person
        yield REGISTRY_INBOUND, number, _envelope(rng, "customer.upserted", "urn:system:crm", stamp, upsert)
        if i in heavy:
            days = [plan.as_of - timedelta(days=d) for d in range(plan.heavy_days(), 0, -1)]
            remaining = plan.heavy_readings
            for point in points:
                for day in days[:remaining]:
                    energy = f"{rng.uniform(0.01, 0.4):.3f}"
                    data = {"customer_number": number, "metering_point": point, "period_start": day.isoformat(),
                            "period_end": day.isoformat(), "energy_mwh": energy, "annual_forecast_mwh": None}  # fmt: skip
                    yield REGISTRY_INBOUND, number, _envelope(rng, "consumption.reported", "urn:system:metering", f"{day.isoformat()}T23:00:00+00:00", data)  # fmt: skip
                remaining -= min(remaining, len(days))
        else:
            forecast = rng.uniform(8, 30)
            for start, end in months:
                season = 1.8 if start.month in (12, 1, 2) else 0.4 if start.month in (6, 7, 8) else 1.0
                data = {"customer_number": number, "metering_point": points[0], "period_start": start.isoformat(),
                        "period_end": end.isoformat(), "energy_mwh": f"{forecast / 12 * season * rng.uniform(0.8, 1.2):.3f}",
                        "annual_forecast_mwh": f"{forecast:.3f}"}  # fmt: skip
                yield REGISTRY_INBOUND, number, _envelope(rng, "consumption.reported", "urn:system:metering", f"{end.isoformat()}T23:00:00+00:00", data)  # fmt: skip
        for k, (start, end) in enumerate(months[-plan.invoices :] if plan.invoices else []):
            amount = f"{rng.uniform(40, 400):.2f}"
            issued = end + timedelta(days=1)
            data = {"customer_number": number, "invoice_number": f"INV-{plan.seed}-{i:07d}-{k:03d}",
                    "issued_at": f"{issued.isoformat()}T08:00:00+00:00", "due_date": (issued + timedelta(days=14)).isoformat(),
                    "total_eur": amount, "lines": [{"text": f"Kaukolämpö {start:%m/%Y}", "amount_eur": amount}]}  # fmt: skip
            yield (
                BILLING_INBOUND,
                number,
                _envelope(rng, "invoice.issued", "urn:system:billing", f"{issued.isoformat()}T08:00:00+00:00", data),
            )
        calls = 20 if i in heavy else int(rng.randrange(1000) < plan.recordings_per_mille)
        for k in range(calls):
            at = f"{(plan.as_of - timedelta(days=rng.randrange(1, 365))).isoformat()}T10:{k % 60:02d}:00+00:00"
            audio = b"RIFF" + rng.randbytes(rng.randrange(2_000, 8_000))  # small stand-in audio
            data = {"customer_number": number, "recording_id": f"REC-{plan.seed}-{i:07d}-{k:02d}", "started_at": at,
                    "duration_s": rng.randrange(20, 600), "media_type": "audio/wav",
                    "audio_base64": base64.b64encode(audio).decode()}  # fmt: skip
            yield RECORDINGS_INBOUND, number, _envelope(rng, "call.recorded", "urn:system:telephony", at, data)
        if rng.randrange(1000) < plan.consents_per_mille:
            purpose = rng.choice(["profiling", "direct_marketing"])
            data = {"customer_number": number, "purpose": purpose, "channel": "portal", "at": stamp}
            yield CONSENT_INBOUND, number, _envelope(rng, "consent.given", "urn:system:portal", stamp, data)


def expected_count(plan: Plan) -> int:
    """About how many records ``records`` yields (exact but for the random recordings and consents),
    for the progress bar."""
    heavy = min(plan.heavy, plan.customers)
    normal = plan.customers - heavy
    per_normal = 1 + plan.months + min(plan.invoices, plan.months)
    per_heavy = 1 + plan.heavy_readings + min(plan.invoices, plan.months) + 20
    extra = normal * (plan.recordings_per_mille + plan.consents_per_mille) // 1000
    return normal * per_normal + heavy * per_heavy + extra


def consumers(groups: list[str], seeded: list[str]) -> list[tuple[str, str]]:
    """(group base, topic) pairs to wait for: ``service=base`` is that service's topics, a bare
    ``base`` every topic seeded."""
    pairs = []
    for entry in groups:
        service, _, base = entry.rpartition("=")
        if service and service not in READS:
            raise ValueError(f"--group {entry}: unknown service {service!r} (one of {', '.join(READS)})")
        pairs += [(base, t) for t in (READS[service] if service else seeded) if t in seeded]
    return pairs


async def lag(bootstrap: str, pairs: list[tuple[str, str]], options: dict[str, Any]) -> dict[str, int]:
    """Records not yet committed, per ``<base>.<topic>`` group (of ``pairs``) that has committed."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from lampo.messaging.topics import consumer_group_for
    from lampo.testing import _partitions as partitions  # waits for the topic's metadata

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **options)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **options)
    await admin.start()
    await consumer.start()
    try:
        topics = sorted({t for _, t in pairs})
        parts = {t: [TopicPartition(t, p) for p in sorted(await partitions(consumer, t))] for t in topics}
        ends = await consumer.end_offsets([tp for tps in parts.values() for tp in tps])
        known = {g for g, _ in await admin.list_consumer_groups()}
        behind: dict[str, int] = {}
        for base, topic in pairs:
            group = consumer_group_for(base, topic)
            if group not in known:
                continue
            committed = await admin.list_consumer_group_offsets(group, partitions=parts[topic])
            if not any(o.offset >= 0 for o in committed.values()):
                continue  # the group exists but never read this topic
            behind[group] = sum(ends[tp] - max(0, committed[tp].offset) for tp in parts[topic] if tp in committed)
        return behind
    finally:
        await consumer.stop()
        await admin.close()


async def run(
    plan: Plan, *, bootstrap: str, compression: str, wait: bool, groups: list[str], timeout: float
) -> dict[str, Any]:
    """Publish the plan; with ``wait``, wait for the groups' lag to reach 0. Returns the figures."""
    import asyncio
    import time

    import orjson
    from aiokafka import AIOKafkaProducer
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lampo.contracts.envelope import CONTENT_TYPE
    from lampo.testing import kafka_options

    options = kafka_options()
    topics_seen: dict[str, int] = {}
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=50,
        max_batch_size=1024 * 1024,
        max_request_size=4 * 1024 * 1024,
        compression_type=None if compression == "none" else compression,
        acks=1,
        **options,
    )
    headers = [("content-type", CONTENT_TYPE.encode())]
    await producer.start()
    start = time.perf_counter()
    sent = 0
    try:
        with Progress(
            TextColumn("seeding"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]} events/s"),
            TimeElapsedColumn(), transient=False,
        ) as progress:  # fmt: skip
            task = progress.add_task("seed", total=expected_count(plan), rate="-")
            pending: list[asyncio.Future[Any]] = []
            for topic, key, event in records(plan):
                pending.append(await producer.send(topic, orjson.dumps(event), key=key.encode(), headers=headers))
                topics_seen[topic] = topics_seen.get(topic, 0) + 1
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    sent += len(pending)
                    pending = []
                    progress.update(task, completed=sent, rate=f"{sent / (time.perf_counter() - start):,.0f}")
            await asyncio.gather(*pending)
            sent += len(pending)
            progress.update(task, completed=sent, total=sent, rate=f"{sent / (time.perf_counter() - start):,.0f}")
    finally:
        await producer.stop()
    published_s = time.perf_counter() - start
    figures: dict[str, Any] = {"events": sent, "by_topic": topics_seen, "publish_s": round(published_s, 2),
                               "publish_rate": round(sent / published_s)}  # fmt: skip
    typer.echo(f"published {sent:,} events in {published_s:.1f} s ({sent / published_s:,.0f} events/s)")
    for topic, count in sorted(topics_seen.items()):
        typer.echo(f"  {topic}: {count:,}")
    if not wait:
        return figures
    deadline = start + timeout
    behind: dict[str, int] = {}
    while time.perf_counter() < deadline:
        behind = await lag(bootstrap, consumers(groups, sorted(topics_seen)), options)
        if behind and not any(behind.values()):
            break
        if not behind:
            typer.secho(f"lampo seed: no consumer group of {', '.join(groups)} reads these topics yet", err=True)
        await asyncio.sleep(1)
    else:
        typer.secho(f"lampo seed: still behind after {timeout:.0f} s: {behind}", fg="red", err=True)
        raise typer.Exit(1)
    ingest_s = time.perf_counter() - start
    figures |= {"ingest_s": round(ingest_s, 2), "ingest_rate": round(sent / ingest_s), "groups": sorted(behind)}
    typer.echo(
        f"ingested by {len(behind)} consumer groups in {ingest_s:.1f} s from the first event"
        f" ({sent / ingest_s:,.0f} events/s; {ingest_s - published_s:.1f} s after publishing ended)"
    )
    return figures


def seed(  # noqa: PLR0917 - Typer passes options by name
    customers: int = typer.Option(10_000, "--customers", min=1, help="how many customers"),
    months: int = typer.Option(36, "--months", min=0, help="monthly consumption readings per customer"),
    invoices: int = typer.Option(4, "--invoices", min=0, help="invoices per customer (the last months')"),
    heavy: int = typer.Option(
        3, "--heavy", min=0, help="heavy subjects: entrepreneurs with many metering points, daily readings"
    ),
    heavy_readings: int = typer.Option(50_000, "--heavy-readings", min=0, help="daily readings of each heavy subject"),
    recordings: int = typer.Option(
        20, "--recordings", min=0, max=1000, help="customers with a call recording, per mille"
    ),
    consents: int = typer.Option(100, "--consents", min=0, max=1000, help="customers with a consent, per mille"),
    seed_: int = typer.Option(1, "--seed", help="the same seed (and --as-of) publishes the same records"),
    as_of: str = typer.Option("", "--as-of", help="the day the register is seeded as of (default today, UTC)"),
    compression: str = typer.Option("gzip", "--compression", help="gzip or none"),
    wait: bool = typer.Option(False, "--wait", help="wait until the services have ingested everything (lag 0)"),
    group: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            help="SERVICE=BASE: wait for that service's consumer groups <BASE>.<topic> on the topics it reads (default: make up's lampo-SERVICE for registry, billing, recordings, consent, retention); a bare BASE: its groups on every topic seeded. Repeatable",
        ),
    ] = None,
    timeout: float = typer.Option(3600, "--timeout", help="seconds --wait waits at most"),
    json_out: bool = typer.Option(False, "--json", help="print the figures as one JSON line at the end"),
) -> None:
    """Publish a synthetic register through the public inbound topics (identity codes in the
    900-999 test range), with progress; say how long it took, and with --wait how long the services
    took to ingest it."""
    import asyncio
    import json
    from datetime import UTC, datetime

    from lampo.testing import BOOTSTRAP

    try:
        consumers(group or DEFAULT_GROUPS, [*READS["retention"], "consent.inbound.v1"])
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--group") from None
    if compression not in ("gzip", "none"):
        raise typer.BadParameter("gzip or none", param_hint="--compression")
    day = date.fromisoformat(as_of) if as_of else datetime.now(UTC).date()
    plan = Plan(customers, months, invoices, min(heavy, customers), heavy_readings, recordings, consents, seed_, day)
    figures = asyncio.run(
        run(
            plan,
            bootstrap=BOOTSTRAP,
            compression=compression,
            wait=wait,
            groups=group or DEFAULT_GROUPS,
            timeout=timeout,
        )
    )
    if json_out:
        typer.echo(json.dumps(figures))
