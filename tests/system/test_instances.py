"""Two instances of every service, each pair in its service's consumer group and database, under
load: people sent under two customer numbers at once, consent changes, access requests and
erasures. Mid-run one instance of every service is killed (SIGKILL: no goodbye to the group, no
clean release of its connections); the instance killed is the one that started first, so it held
its database's outbox relay. Nothing is lost, nothing doubled, each identity code is one subject,
and the notices of each key leave in order."""

from __future__ import annotations

import asyncio
import json
import random
import re
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from suite import ServiceProcess, Suite, installed, launch

from lampo.contracts.catalog import CONSENT_EVENTS, CONSENT_INBOUND, DSAR_EVENTS, REGISTRY_EVENTS, REGISTRY_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.db.pool import server_url_of
from lampo.synthetic import approve, submit, submitted
from lampo.testing import PG_URL, Producer, TopicReader, customer_upserted, eventually

PEOPLE = 150  # each under two customer numbers: 300 customers
UPDATED = 100  # of them updated twice more, while an instance dies
CONSENTING = 60  # of them with four consent changes each
ACCESS, ERASURES = 4, 4


@pytest.fixture(scope="module")
async def pairs(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suite]:
    wanted = ["registry", "consent", "dsar", "billing", "recordings", "retention", "staff"]
    if not {"registry", "consent", "dsar"} <= set(installed()):
        pytest.skip("registry, consent and dsar are needed")
    running = await launch(
        [s for s in installed() if s in wanted], tmp_path_factory.mktemp("pair-logs"), replicas=2, ready_timeout=240
    )
    try:
        yield running
    finally:
        await running.close()


async def fetch(suite: Suite, service: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(server_url_of(PG_URL, suite[service].env["LAMPO_DATABASE"]))
    try:
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        return rows
    finally:
        await conn.close()


async def own_purpose(suite: Suite, purpose: str) -> None:
    """A consent purpose known to this suite's consent service alone (a copy of profiling). The
    topics are shared: another suite running beside this one reads the same inbound records and
    announces the same changes; on this purpose it dead-letters them, so every consent.changed
    of it on the topic is this suite's."""
    conn = await asyncpg.connect(server_url_of(PG_URL, suite["consent"].env["LAMPO_DATABASE"]))
    try:
        async with conn.transaction():
            await conn.execute(
                "CREATE TEMP TABLE copy ON COMMIT DROP AS SELECT * FROM purposes WHERE purpose = 'profiling'"
            )
            await conn.execute("UPDATE copy SET purpose = $1", purpose)
            await conn.execute("INSERT INTO purposes SELECT * FROM copy")
    finally:
        await conn.close()


def consent_event(customer: str, purpose: str, given: bool, at: datetime) -> CloudEvent:
    kind = "consent.given" if given else "consent.withdrawn"
    data = {"customer_number": customer, "purpose": purpose, "channel": "portal", "at": at}
    return CloudEvent.new(kind, "urn:system:portal", data)


_CHECK = "0123456789ABCDEFHJKLMNPRSTUVWXY"


def identity_codes(count: int) -> list[str]:
    """``count`` identity codes of the test range (individual numbers 900-999), born on days of
    1960-2015 that ``lampo.testing.synthetic_identity_code`` never uses (it stays in 1950), from
    a random start: another suite on the shared topics, with codes of its own, never matches
    these people to its subjects (and then erases them by a task of its own)."""
    start = random.randrange(0, 20_000 * 100 - count)
    codes = []
    for k in range(start, start + count):
        born = date(1960, 1, 1) + timedelta(days=k // 100)
        digits = f"{born:%d%m%y}{900 + k % 100:03d}"
        codes.append(f"{born:%d%m%y}{'-' if born.year < 2000 else 'A'}{900 + k % 100:03d}{_CHECK[int(digits) % 31]}")
    return codes


async def relay_active(instance: ServiceProcess) -> bool:
    """Whether this instance's outbox relay is the one of its database that sends (/metrics)."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{instance.url}/metrics", timeout=10)).text
    found = re.search(r"^lampo_outbox_relay_active(?:\{[^}]*\})? (\S+)$", text, re.M)
    return found is not None and float(found.group(1)) == 1


def upserted(customer: str, n: int, code: str, **options: Any) -> bytes:
    event = json.loads(customer_upserted(customer, n, **options).to_bytes())
    event["data"]["person"]["personal_identity_code"] = code
    return json.dumps(event).encode()


def body(record: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(record.value)
    return parsed


def first_sightings(records: list[Any]) -> list[Any]:
    """Each event once, where it first appeared: a relay that takes over sends again what the
    dead one sent but had not yet marked sent (the same event, the same id; readers drop it)."""
    seen: set[str] = set()
    first = []
    for r in records:
        event_id = body(r)["id"]
        if event_id not in seen:
            seen.add(event_id)
            first.append(r)
    return first


@pytest.mark.timeout(600)  # fourteen processes start first: minutes on a loaded 2-core machine
async def test_two_instances_of_every_service_one_killed_mid_run(pairs: Suite) -> None:
    suite = pairs
    run = uuid.uuid4().hex[:6]
    purpose = f"pairs_{run}"
    await own_purpose(suite, purpose)
    codes = identity_codes(PEOPLE)
    people = [(f"mi{run}{i:03d}a", f"mi{run}{i:03d}b", i) for i in range(PEOPLE)]
    ours = {c for a, b, _ in people for c in (a, b)}
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    consenting = [a for a, _, _ in people[:CONSENTING]]
    asked = people[UPDATED : UPDATED + ACCESS + ERASURES]  # requests for people not updated later
    erased = {c for a, b, _ in asked[ACCESS:] for c in (a, b)}

    def consents(given: bool, second: int) -> list[tuple[str | None, bytes]]:
        at = t0 + timedelta(seconds=second)
        return [(c, consent_event(c, purpose, given, at).to_bytes()) for c in consenting]

    async with (
        TopicReader(REGISTRY_EVENTS, CONSENT_EVENTS) as notices,
        TopicReader(DSAR_EVENTS) as dsar_events,
        Producer() as producer,
    ):
        # One person under two customer numbers at once, on different partitions (and instances).
        first_round: list[tuple[str | None, bytes]] = []
        for a, b, n in people:
            first_round += [(a, upserted(a, n, codes[n], time=t0)), (b, upserted(b, n, codes[n], time=t0))]
        await producer.send_many(REGISTRY_INBOUND, first_round)
        await producer.send_many(CONSENT_INBOUND, consents(True, 1) + consents(False, 2))

        async def registered() -> bool:
            rows = await fetch(
                suite, "registry", "SELECT count(*) AS n FROM customers WHERE customer_number LIKE $1", f"mi{run}%"
            )
            return int(rows[0]["n"]) == 2 * PEOPLE

        await eventually(registered, timeout=120, interval=0.5)
        # This suite's subjects (other suites on the shared topics make subjects of their own).
        subjects = {
            r["subject_id"]
            for r in await fetch(
                suite, "registry", "SELECT subject_id FROM customers WHERE customer_number LIKE $1", f"mi{run}%"
            )
        }
        requests = {}
        for (a, _, _), kind in zip(asked, ["access"] * ACCESS + ["erasure"] * ERASURES, strict=True):
            requests[await submit(submitted(kind, a))] = kind

        # More load, and while it is being handled the first-started instance of each service dies.
        later: list[tuple[str | None, bytes]] = [
            (a, upserted(a, n, codes[n], email=f"toinen{n}@example.fi", time=t0 + timedelta(minutes=1)))
            for a, _, n in people[:UPDATED]
        ]
        await producer.send_many(REGISTRY_INBOUND, later)
        await producer.send_many(CONSENT_INBOUND, consents(True, 3))
        await asyncio.sleep(0.5)
        killed = [suite.instances(name)[1] for name in suite.services]
        # Started first, each holds its database's outbox relay: the survivor must take over.
        assert [p.name for p in killed if not await relay_active(p)] == []
        await asyncio.gather(*(p.stop(kill=True) for p in killed))
        await producer.send_many(
            REGISTRY_INBOUND,
            [
                (b, upserted(b, n, codes[n], email=f"kolmas{n}@example.fi", time=t0 + timedelta(minutes=2)))
                for _, b, n in people[:UPDATED]
            ],
        )
        await producer.send_many(CONSENT_INBOUND, consents(False, 4))

        approved: set[str] = set()

        async def all_answered() -> bool:
            rows = await fetch(
                suite,
                "dsar",
                "SELECT request_id, status FROM requests WHERE request_id = ANY($1::text[])",
                list(requests),
            )
            status = {r["request_id"]: r["status"] for r in rows}
            for request_id in requests:
                if status.get(request_id) == "awaiting_approval" and request_id not in approved:
                    await approve(request_id)
                    approved.add(request_id)
            return all(status.get(rid) in {"completed", "completed_with_retention"} for rid in requests)

        await eventually(all_answered, timeout=240, interval=0.5)

        def consent_announced() -> bool:
            ids = {
                body(r)["id"]
                for r in notices.records
                if r.topic == CONSENT_EVENTS and body(r)["data"]["purpose"] == purpose
            }
            return len(ids) >= len(consenting) * 4

        async def announced() -> bool:
            await notices.quiet(0.3)
            return consent_announced()

        await eventually(announced, timeout=120, interval=0.2)
        await notices.quiet(2.0)  # anything doubled would come now
        await dsar_events.quiet(0.5)

    # The survivor of each pair took the relay over.
    assert [name for name in suite.services if not await relay_active(suite[name])] == []

    # Every request answered once.
    completions = await fetch(
        suite,
        "dsar",
        "SELECT request_id, count(*) AS n FROM transitions WHERE request_id = ANY($1::text[])"
        " AND to_status IN ('completed', 'completed_with_retention') GROUP BY request_id",
        list(requests),
    )
    assert {r["request_id"]: r["n"] for r in completions} == dict.fromkeys(requests, 1)
    package_of_ours = f"{suite['dsar'].env['LAMPO_PUBLIC_URL']}/v1/packages/"
    for request_id, kind in requests.items():
        if kind == "access":  # the package names this suite's coordinator
            mine = [
                r for r in dsar_events.records
                if body(r)["type"] == "dsar.completed" and body(r)["data"]["request_id"] == request_id
                and (body(r)["data"].get("package") or {}).get("uri", "").startswith(package_of_ours)
            ]  # fmt: skip
            assert len({body(r)["id"] for r in mine}) == 1, request_id

    # One subject per identity code, no customer lost or doubled (erased people gone).
    registry = await fetch(
        suite,
        "registry",
        "SELECT customer_number, subject_id FROM customers WHERE customer_number LIKE $1",
        f"mi{run}%",
    )
    subject_of = {r["customer_number"]: r["subject_id"] for r in registry}
    assert set(subject_of) == ours - erased
    assert all(subject_of[a] == subject_of[b] for a, b, _ in people if a not in erased), "a person became two subjects"
    assert len(set(subject_of.values())) == PEOPLE - ERASURES
    split = await fetch(
        suite,
        "registry",
        "SELECT digest FROM lookup WHERE kind = 'personal_identity_code' GROUP BY digest HAVING count(DISTINCT subject_id) > 1",
    )
    assert split == []
    # Every update stored (the last one wins for each customer number).
    contacts = await fetch(
        suite,
        "registry",
        "SELECT customer_number, event_time FROM sections WHERE section = 'contact' AND customer_number LIKE $1",
        f"mi{run}%",
    )
    stored_at = {r["customer_number"]: r["event_time"] for r in contacts}
    for i, (a, b, _) in enumerate(people):
        if a in erased:
            continue
        assert stored_at[a] == t0 + (timedelta(minutes=1) if i < UPDATED else timedelta(0)), a
        assert stored_at[b] == t0 + (timedelta(minutes=2) if i < UPDATED else timedelta(0)), b

    # registry.events.v1: one notice per change (nothing doubled, nothing lost), in order per key.
    changes = [
        r for r in notices.records
        if r.topic == REGISTRY_EVENTS and r.key.decode() in subjects and body(r)["type"] == "subject.changed"
    ]  # fmt: skip
    assert len(changes) >= 2 * PEOPLE + 2 * UPDATED
    ids_per_change: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for r in changes:
        data = body(r)["data"]
        ids_per_change[(data["customer_number"], data["changed_at"], ",".join(sorted(data["categories"])))].add(
            body(r)["id"]
        )
    doubled = {k: v for k, v in ids_per_change.items() if len(v) > 1}
    assert doubled == {}
    announced = defaultdict(set)
    for customer, changed_at, _ in ids_per_change:
        announced[customer].add(datetime.fromisoformat(changed_at))
    for i, (a, b, _) in enumerate(people):
        if a in erased:
            continue
        assert {t0, t0 + timedelta(minutes=1)} <= announced[a] if i < UPDATED else t0 in announced[a], a
        assert {t0, t0 + timedelta(minutes=2)} <= announced[b] if i < UPDATED else t0 in announced[b], b
    per_key: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for r in first_sightings(changes):
        data = body(r)["data"]
        assert r.key.decode() == data["subject_id"]
        per_key[(data["subject_id"], data["customer_number"])].append(datetime.fromisoformat(data["changed_at"]))
    out_of_order = {k: v for k, v in per_key.items() if v != sorted(v)}
    assert out_of_order == {}

    # consent.events.v1 (compacted): every change once, in order, and the last record of each
    # key the current state (what compaction keeps).
    consent = [r for r in notices.records if r.topic == CONSENT_EVENTS and body(r)["data"]["purpose"] == purpose]
    ids_per_consent: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in consent:
        ids_per_consent[(r.key.decode(), body(r)["data"]["effective_at"])].add(body(r)["id"])
    assert {k: v for k, v in ids_per_consent.items() if len(v) > 1} == {}
    sequence: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for r in first_sightings(consent):
        data = body(r)["data"]
        sequence[r.key.decode()].append((datetime.fromisoformat(data["effective_at"]), data["state"]))
    expected = [
        (t0 + timedelta(seconds=s), state) for s, state in zip(range(1, 5), ["granted", "withdrawn"] * 2, strict=True)
    ]
    assert {c: sequence[c] for c in consenting if sequence[c] != expected} == {}
    last: dict[str, str] = {}
    for r in consent:
        last[r.key.decode()] = body(r)["data"]["state"]
    assert {c: last[c] for c in consenting if last[c] != "withdrawn"} == {}
