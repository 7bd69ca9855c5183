"""Clocks from events and sweeps on the real broker and database, with an injected clock: what is
due is issued as purge tasks to the participant holding it, recorded as proof of deletion, held
back while a legal hold stands, and confirmed by the participants' acks."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from retention_events import (
    ALL_REGISTRY,
    call_recorded,
    consent_changed,
    invoice_issued,
    relationship_ended,
    subject_changed,
)

from lampo.contracts.catalog import PRIVACY_ACKS, PRIVACY_TASKS, REGISTRY_INBOUND, RETENTION_INBOUND, parse
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyTask
from lampo.messaging.topics import dlq
from lampo.retention import store
from lampo.retention.domain import SOURCE, DueItem, plan_purges, purge_task
from lampo.retention.settings import DEFAULT_DATAMAP
from lampo.retention.sweep import task_records
from lampo.testing import Producer, TopicReader, eventually, header, trusted_keys_for

ENDED = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


def isolated_datamap(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The repository's data map with participants renamed for this test only."""
    suffix = uuid.uuid4().hex[:8]
    names = {n: f"{n}-{suffix}" for n in ("registry", "billing", "recordings")}
    text = DEFAULT_DATAMAP.read_text(encoding="utf-8")
    for old, new in names.items():
        text = text.replace(f'participant = "{old}"', f'participant = "{new}"').replace(f'"{old}"', f'"{new}"')
    path = tmp_path / "datamap.toml"
    path.write_text(text, encoding="utf-8")
    return path, names


def new_customer() -> str:
    return str(uuid.uuid4().int % 10**9)


async def clocks(retention, customer: str) -> dict[tuple[str, str], datetime]:  # type: ignore[no-untyped-def]
    async with retention.service.runtime.pool.acquire() as conn:
        return {(r["trigger"], r["category"]): r["started_at"] for r in await store.clocks_of(conn, customer)}


async def wait_clocks(retention, customer: str, count: int) -> dict[tuple[str, str], datetime]:  # type: ignore[no-untyped-def]
    async def enough():  # type: ignore[no-untyped-def]
        found = await clocks(retention, customer)
        return found if len(found) >= count else None

    try:
        return await eventually(enough)
    except AssertionError:
        stats = {c.name: c.stats for c in retention.service.runtime.consumers}
        raise AssertionError(f"clocks {await clocks(retention, customer)}; consumers {stats}") from None


def tasks_for(records, customer: str) -> list[PrivacyTask]:  # type: ignore[no-untyped-def]
    found = []
    for r in records:
        task = parse(PRIVACY_TASKS, r.value, extra="forbid").data
        assert isinstance(task, PrivacyTask)
        if customer in task.subject.customer_numbers:
            found.append(task)
    return found


async def sweep_tasks(
    retention, customers: list[str], at: datetime, *, expected: int, quiet: float = 0.5
) -> dict[str, list[PrivacyTask]]:  # type: ignore[no-untyped-def]
    """Move the clock to ``at``, sweep, and return the purge tasks issued per customer."""
    retention.clock.set(at)
    async with TopicReader(PRIVACY_TASKS) as reader:
        result = await retention.service.sweeper.sweep()
        assert result.as_of == at
        mine = lambda r: any(c in r.value.decode() for c in customers)  # noqa: E731
        if expected:
            await reader.wait_for(mine, count=expected)
        records = await reader.quiet(quiet)
    by_customer = {c: tasks_for(records, c) for c in customers}
    assert sum(len(v) for v in by_customer.values()) == expected, by_customer
    return by_customer


def summary(tasks: list[PrivacyTask]) -> set[tuple[str, tuple[str, ...]]]:
    return {(t.participant, tuple(c.value for c in t.categories)) for t in tasks}


async def test_clocks_start_from_the_events_of_every_source(retention) -> None:
    customer = new_customer()
    async with Producer() as p:
        await subject_changed(p, customer, f"subj-{customer}", ENDED - timedelta(days=30), ["basic", "contact"])
        await relationship_ended(p, customer, ENDED)
        await invoice_issued(p, customer, ENDED + timedelta(days=5))
        await call_recorded(p, customer, ENDED - timedelta(days=3))
        await consent_changed(p, customer, ENDED + timedelta(days=1), "withdrawn")
    found = await wait_clocks(retention, customer, 6)
    assert found == {
        ("last_activity", "basic"): ENDED - timedelta(days=30),
        ("last_activity", "contact"): ENDED - timedelta(days=30),
        ("relationship_ended", ""): ENDED,
        ("financial_year_end", ""): datetime(2026, 12, 31, 22, 0, tzinfo=UTC),  # 1 Jan 2027 00:00 Finnish time
        ("recording_made", ""): ENDED - timedelta(days=3),
        ("consent_withdrawn", ""): ENDED + timedelta(days=1),
    }
    async with retention.service.runtime.pool.acquire() as conn:
        assert (
            await conn.fetchval("SELECT subject_id FROM subjects WHERE customer_number = $1", customer)
            == f"subj-{customer}"
        )


async def test_bad_records_on_other_services_topics_are_left_to_their_owner(retention) -> None:
    customer = new_customer()
    async with TopicReader(dlq(REGISTRY_INBOUND)) as dead, Producer() as p:
        await p.send(REGISTRY_INBOUND, customer, b"{not json")
        await relationship_ended(p, customer, ENDED)
        await wait_clocks(retention, customer, 1)
        later = await dead.quiet(1.0)
    # the registry (if one runs) dead-letters it; retention does not copy it a second time
    assert [
        r for r in later if r.key == customer.encode() and (header(r, "error.consumer") or "").startswith("retention")
    ] == []
    assert retention.service.ignored[REGISTRY_INBOUND]["invalid_json"] >= 1


async def test_relationship_end_then_each_period_passes_and_exactly_what_is_due_is_purged(retention) -> None:
    customer = new_customer()
    subject = f"subj-{customer}"
    async with Producer() as p:
        await subject_changed(p, customer, subject, ENDED - timedelta(days=30))
        await relationship_ended(p, customer, ENDED)
        await invoice_issued(p, customer, ENDED + timedelta(days=5))  # financial year ends 31.12.2026
        await call_recorded(p, customer, ENDED - timedelta(days=5))
    await wait_clocks(retention, customer, 5)

    steps = [
        (ENDED + timedelta(days=29), set()),
        (ENDED + timedelta(days=30), {("registry", ("other_consented",))}),
        (ENDED + timedelta(days=300), set()),
        (datetime(2027, 1, 10, 12, tzinfo=UTC), {("recordings", ("customer_relationship",))}),
        (datetime(2027, 1, 15, 9, tzinfo=UTC), {("registry", ("services",))}),
        (datetime(2029, 1, 15, 8, 59, tzinfo=UTC), set()),
        (
            datetime(2029, 1, 15, 9, tzinfo=UTC),
            {("registry", ("basic", "contact_person", "contact", "customer_relationship", "consumption"))},
        ),
        (datetime(2032, 12, 31, 21, 59, tzinfo=UTC), set()),  # 31.12.2032 23:59 in Finland: still kept
        (datetime(2032, 12, 31, 22, 0, tzinfo=UTC), {("billing", ("billing",))}),
        (datetime(2040, 1, 1, tzinfo=UTC), set()),  # nothing twice
    ]
    for at, expected in steps:
        issued = await sweep_tasks(retention, [customer], at, expected=len(expected))
        assert summary(issued[customer]) == expected, at
        for task in issued[customer]:
            assert task.kind == "purge" and task.request_id.startswith("sweep-") and task.attempt == 1
            assert task.subject.subject_id == subject and task.subject.customer_numbers == [customer]
            assert task.deadline == at + timedelta(days=7)

    async with retention.service.runtime.pool.acquire() as conn:
        proof = await store.purges_of(conn, customer)
    assert {(r["rule"], r["category"], r["participant"]) for r in proof} == {
        ("consented-after-relationship", "other_consented", "registry"),
        ("call-recordings", "customer_relationship", "recordings"),
        ("services-after-relationship", "services", "registry"),
        ("basic-after-relationship", "basic", "registry"),
        ("contact-person-after-relationship", "contact_person", "registry"),
        ("contact-after-relationship", "contact", "registry"),
        ("relationship-after-end", "customer_relationship", "registry"),
        ("consumption-after-relationship", "consumption", "registry"),
        ("billing-vouchers", "billing", "billing"),
    }
    # (a participant of the running suite may already have answered: issued, done or failed)
    assert all(
        r["task_id"].startswith("purge-") and r["status"] in ("issued", "done", "failed") and r["issued_at"]
        for r in proof
    )
    billing = next(r for r in proof if r["rule"] == "billing-vouchers")
    assert billing["trigger"] == "financial_year_end" and billing["due_at"] == datetime(2032, 12, 31, 22, tzinfo=UTC)


async def test_prospects_without_activity_are_purged_and_customers_are_not(retention) -> None:
    prospect, customer = new_customer(), new_customer()
    last_contact = datetime(2026, 1, 20, 10, tzinfo=UTC)
    async with Producer() as p:
        await subject_changed(p, prospect, f"subj-{prospect}", last_contact)
        await subject_changed(p, customer, f"subj-{customer}", last_contact)
        await invoice_issued(p, customer, last_contact)  # invoiced: a customer, not a prospect
    await wait_clocks(retention, prospect, 2)
    await wait_clocks(retention, customer, 3)

    early = await sweep_tasks(retention, [prospect, customer], last_contact + timedelta(days=360), expected=0)
    assert early == {prospect: [], customer: []}
    later = await sweep_tasks(retention, [prospect, customer], datetime(2027, 1, 20, 10, tzinfo=UTC), expected=3)
    assert later[customer] == []
    assert summary(later[prospect]) == {
        (
            "registry",
            (
                "basic",
                "contact_person",
                "contact",
                "customer_relationship",
                "services",
                "consumption",
                "other_consented",
            ),
        ),
        ("billing", ("billing",)),
        ("recordings", ("customer_relationship",)),
    }


async def test_new_activity_restarts_a_prospects_clock(retention) -> None:
    prospect = new_customer()
    first = datetime(2026, 1, 20, 10, tzinfo=UTC)
    async with Producer() as p:
        await subject_changed(p, prospect, f"subj-{prospect}", first)
        await subject_changed(p, prospect, f"subj-{prospect}", first + timedelta(days=200), ["contact"])
    await eventually(lambda: _clock_is(retention, prospect, ("last_activity", "contact"), first + timedelta(days=200)))
    none = await sweep_tasks(retention, [prospect], datetime(2027, 1, 21, tzinfo=UTC), expected=0)
    assert none[prospect] == []


async def _clock_is(retention, customer, key, at) -> bool:  # type: ignore[no-untyped-def]
    return (await clocks(retention, customer)).get(key) == at


def hold_event(kind: str, hold_id: str, customer: str, categories: list[str] | None = None) -> CloudEvent:
    if kind == "placed":
        data = {
            "hold_id": hold_id,
            "customer_number": customer,
            "categories": categories or [],
            "case_reference": "R 26/555",
            "authority": "Keski-Suomen poliisilaitos",
            "placed_at": "2026-02-01T10:00:00Z",
        }
    else:
        data = {"hold_id": hold_id, "customer_number": customer, "released_at": "2029-06-01T10:00:00Z"}
    return CloudEvent.new(f"legal_hold.{kind}", "urn:system:case-management", data)


async def test_a_hold_blocks_the_sweep_and_its_release_unblocks_it(retention) -> None:
    held_all, held_billing = new_customer(), new_customer()
    async with Producer() as p:
        for c in (held_all, held_billing):
            await subject_changed(p, c, f"subj-{c}", ENDED - timedelta(days=30))
            await relationship_ended(p, c, ENDED)
            await invoice_issued(p, c, ENDED)
        await p.send(RETENTION_INBOUND, held_all, hold_event("placed", f"h1-{held_all}", held_all))
        await p.send(
            RETENTION_INBOUND, held_billing, hold_event("placed", f"h2-{held_billing}", held_billing, ["billing"])
        )
    await wait_clocks(retention, held_all, 4)
    await wait_clocks(retention, held_billing, 4)
    await eventually(lambda: retention.service.consumer("retention:holds").stats.processed >= 2)

    at = datetime(2033, 6, 1, tzinfo=UTC)  # everything of both is past its period
    counts = await retention.service.sweeper.due(at)
    assert counts["billing-vouchers"][1] >= 2  # held by both holds
    issued = await sweep_tasks(retention, [held_all, held_billing], at, expected=1)
    assert issued[held_all] == []
    assert summary(issued[held_billing]) == {
        (
            "registry",
            (
                "basic",
                "contact_person",
                "contact",
                "customer_relationship",
                "services",
                "consumption",
                "other_consented",
            ),
        )
    }

    async with Producer() as p:
        await p.send(RETENTION_INBOUND, held_all, hold_event("released", f"h1-{held_all}", held_all))
    await eventually(lambda: retention.service.consumer("retention:holds").stats.processed >= 3)
    released = await sweep_tasks(retention, [held_all, held_billing], at + timedelta(days=1), expected=2)
    assert summary(released[held_all]) == {
        (
            "registry",
            (
                "basic",
                "contact_person",
                "contact",
                "customer_relationship",
                "services",
                "consumption",
                "other_consented",
            ),
        ),
        ("billing", ("billing",)),
    }
    assert released[held_billing] == []  # its billing hold still stands


async def test_acks_confirm_the_proof_of_deletion(start_retention, tmp_path) -> None:
    # Participants of their own, so that no other running service answers these tasks first.
    datamap, names = isolated_datamap(tmp_path)
    # The acks are signed by the renamed registry, whose (test) key retention trusts.
    async with start_retention(datamap=datamap, trusted_keys=trusted_keys_for(names["registry"])) as retention:
        await _acks_confirm(retention, names["registry"])


async def _acks_confirm(retention, registry: str) -> None:  # type: ignore[no-untyped-def]
    customer = new_customer()
    async with Producer() as p:
        await relationship_ended(p, customer, ENDED)
    await wait_clocks(retention, customer, 1)
    issued = await sweep_tasks(retention, [customer], ENDED + timedelta(days=31), expected=1)
    [task] = issued[customer]
    assert task.participant == registry
    ack = {
        "request_id": task.request_id,
        "task_id": task.task_id,
        "participant": task.participant,
        "status": "done",
        "erased": {"other_consented": 2},
        "retained": [],
    }
    # An ack answering another request (an access request's, with its result) comes first: it is
    # passed over before parsing, tracing and the inbox.
    other_request = str(uuid.uuid4())
    other = CloudEvent.new(
        "privacy.ack",
        "urn:lampo:registry",
        {**ack, "request_id": other_request, "task_id": f"{other_request}:{registry}", "result": "x" * 500_000},
    )
    acks = retention.service.consumer("retention:purge-acks")
    passed_over = acks.stats.passed_over
    async with Producer() as p:
        await p.send(PRIVACY_ACKS, other_request, other, signer=registry)
        await p.send(
            PRIVACY_ACKS, task.request_id, CloudEvent.new("privacy.ack", "urn:lampo:registry", ack), signer=registry
        )

    async def confirmed():  # type: ignore[no-untyped-def]
        async with retention.service.runtime.pool.acquire() as conn:
            rows = await store.purges_of(conn, customer)
        return rows if rows and all(r["status"] == "done" for r in rows) else None

    [row] = await eventually(confirmed)
    assert row["erased"] == 2, {
        k: row[k] for k in ("status", "erased", "retained", "error", "confirmed_at", "category", "participant")
    }
    assert row["confirmed_at"] == retention.clock.now()
    assert acks.stats.passed_over > passed_over
    async with retention.service.runtime.pool.acquire() as conn:
        assert not await conn.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", other.id)
    # the proof holds pseudonymous ids, rules and times only
    assert set(dict(row)) >= {
        "rule",
        "category",
        "participant",
        "task_id",
        "issued_at",
        "customer_number",
        "subject_id",
    }


async def test_the_daily_sweep_runs_by_itself(start_retention) -> None:
    customer = new_customer()
    async with (
        TopicReader(PRIVACY_TASKS) as reader,
        start_retention(sweep_interval_s=0.5, sweep_first_delay_s=0.5) as retention,
    ):
        retention.clock.set(ENDED + timedelta(days=31))
        async with Producer() as p:
            await relationship_ended(p, customer, ENDED)
        [record] = await reader.wait_for(lambda r: customer in r.value.decode(), timeout=30)
    assert json.loads(record.value)["data"]["kind"] == "purge"


async def test_the_tasks_grouped_in_sql_are_those_of_the_domain_model(retention) -> None:
    """The sweep groups due items into tasks and names them in SQL (one statement per batch); the
    tasks and their ids are exactly those ``domain.plan_purges`` makes of the same due items,
    also for a clock with microseconds, and every purge counted has its proof row."""
    ended, customer, prospect = new_customer(), new_customer(), new_customer()
    with_micros = datetime(2026, 1, 15, 9, 0, 0, 123456, tzinfo=UTC)
    async with retention.service.runtime.pool.acquire() as conn:
        await store.note_subjects(conn, [(ended, f"subj-{ended}"), (customer, f"subj-{customer}")])  # prospect: none
        await store.start_clocks(
            conn,
            [
                (ended, "relationship_ended", "", with_micros),
                (customer, "relationship_ended", "", ENDED),
                (customer, "financial_year_end", "", datetime(2026, 12, 31, 22, tzinfo=UTC)),
                (prospect, "last_activity", "basic", ENDED),
            ],
        )
    at = datetime(2034, 1, 1, tzinfo=UTC)
    retention.clock.set(at)
    async with TopicReader(PRIVACY_TASKS) as reader:
        result = await retention.service.sweeper.sweep()
        records = await reader.wait_for(
            lambda r: any(c in r.value.decode() for c in (ended, customer, prospect)), count=6
        )
    sent = [t for c in (ended, customer, prospect) for t in tasks_for(records, c)]
    assert {r.key for r in records} == {result.sweep_id.encode()}  # the contract's key: request_id

    async with retention.service.runtime.pool.acquire() as conn:
        proof = [r for c in (ended, customer, prospect) for r in await store.purges_of(conn, c)]
    items = [
        DueItem(
            r["customer_number"],
            r["subject_id"],
            r["rule"],
            r["trigger"],
            r["category"],
            r["participant"],
            r["trigger_at"],
            r["due_at"],
        )
        for r in proof
    ]
    assert next(i for i in items if i.customer_number == ended).trigger_at == with_micros
    planned = plan_purges(items, sweep_id=result.sweep_id, now=at, deadline=timedelta(days=7))
    assert sorted(sent, key=lambda t: t.task_id) == sorted((p.task for p in planned), key=lambda t: t.task_id)
    assert summary([t for t in sent if t.subject.customer_numbers == [prospect]]) == {
        ("registry", tuple(ALL_REGISTRY)),
        ("billing", ("billing",)),
        ("recordings", ("customer_relationship",)),
    }
    assert {t.subject.subject_id for t in sent if t.subject.customer_numbers == [prospect]} == {prospect}
    # each proof row names the task that carried it
    assert {(r["task_id"], r["rule"]) for r in proof} == {(p.task.task_id, i.rule) for p in planned for i in p.items}
    # the sweep's counts are its proof rows (events of other tests may have started clocks too)
    async with retention.service.runtime.pool.acquire() as conn:
        swept = await conn.fetch(
            "SELECT task_id, rule, participant, customer_number FROM purges WHERE sweep_id = $1", result.sweep_id
        )
    assert {r["task_id"] for r in proof} <= {r["task_id"] for r in swept}
    assert (result.tasks, result.purges) == (len({r["task_id"] for r in swept}), len(swept))
    assert result.customers == len({r["customer_number"] for r in swept})  # those with something due
    assert result.per_rule == dict(Counter(r["rule"] for r in swept))
    assert result.per_participant == dict(Counter(p for p, _ in {(r["participant"], r["task_id"]) for r in swept}))


async def test_sweep_candidates_include_everything_due_at_calendar_edges(retention) -> None:
    """The sweep lists candidates from the clocks index with a margin for calendar arithmetic
    (month ends, leap days, daylight saving); every customer number with something due is among
    them at every instant, and clocks far from due are not."""
    starts = [
        datetime(2027, 1, 31, 10, tzinfo=UTC),  # + 1 month is 28 Feb
        datetime(2028, 2, 29, 10, tzinfo=UTC),  # leap day: + 1 year is 28 Feb
        datetime(2027, 3, 27, 23, 30, tzinfo=UTC),  # the night Finland moves to summer time
        datetime(2027, 10, 30, 22, 30, tzinfo=UTC),  # ... and back
        datetime(2027, 12, 31, 22, 0, tzinfo=UTC),  # 1 Jan 00:00 in Finland
    ]
    clocks_by: list[tuple[str, str, str, datetime]] = []
    for n, start in enumerate(starts):
        for trigger, category in (("relationship_ended", ""), ("consent_withdrawn", ""), ("last_activity", "basic")):
            clocks_by.append((f"edge-{n}-{trigger}", trigger, category, start))
    clocks_by.append(("far-future", "relationship_ended", "", datetime(2040, 1, 1, tzinfo=UTC)))
    async with retention.service.runtime.pool.acquire() as conn:
        await store.start_clocks(conn, clocks_by)
    instants = sorted(
        {
            start + period + shift
            for start in starts
            for period in (timedelta(days=26), timedelta(days=30), timedelta(days=365), timedelta(days=366))
            for shift in (timedelta(days=-4), timedelta(days=-2), timedelta(hours=-1), timedelta(0), timedelta(hours=1))
        }
    )
    sweeper = retention.service.sweeper
    rule_args = store._rule_args(sweeper.datamap)  # the exact evaluation the sweep's batches use
    everyone = {c for c, *_ in clocks_by}
    ever_due: set[str] = set()
    for now in instants:
        async with retention.service.runtime.pool.acquire() as conn, conn.transaction():
            await store.use_finnish_time(conn)
            # (only this test's customer numbers: events of other tests may start clocks too)
            candidates = set(await store.sweep_candidates(conn, sweeper.datamap, now)) & everyone
            rows = await conn.fetch(
                f"SELECT DISTINCT customer_number FROM ({store._DUE_ALL}) x",
                *rule_args,
                now,
                list(store.PER_CUSTOMER_TRIGGERS),
                list(store.CUSTOMER_MARKERS),
            )
        due = {r["customer_number"] for r in rows} & everyone
        assert due <= candidates, (now, due - candidates)
        assert "far-future" not in candidates
        assert len(candidates - due) <= len(everyone) // 2, now  # a bound, not a list of everyone
        ever_due |= due
    assert ever_due == everyone - {"far-future"}


def test_task_records_are_the_contract_models_serialization() -> None:
    """A batch's tasks are serialized from one model-built envelope (speed); each record is
    byte for byte what the contract models make of the same task, and parses strictly."""
    now = datetime(2030, 6, 1, 12, 0, 0, 250000, tzinfo=UTC)
    issued = [
        {
            "task_id": f"purge-{n:032x}",
            "participant": participant,
            "customer_number": f"{n:09d}",
            "subject_id": f"subj-{n}" if n % 3 else f"{n:09d}",
            "categories": categories,
        }
        for n, (participant, categories) in enumerate(
            [
                ("registry", ["other_consented", "basic", "contact", "basic"]),
                ("billing", ["billing"]),
                ("recordings", ["customer_relationship"]),
                ("registry", ALL_REGISTRY[::-1]),
            ]
        )
    ]
    records = task_records(issued, sweep_id="sweep-1234", now=now, deadline=timedelta(days=7))
    assert len(records) == len(issued) and len({r.event_id for r in records}) == len(issued)
    for row, record in zip(issued, records, strict=True):
        assert (record.topic, record.key, record.event_type) == (PRIVACY_TASKS, "sweep-1234", "privacy.task")
        assert record.subject_id == row["subject_id"]
        parsed = parse(PRIVACY_TASKS, record.value, extra="forbid")
        model = CloudEvent.new(
            "privacy.task",
            SOURCE,
            purge_task(
                sweep_id="sweep-1234",
                task_id=row["task_id"],
                participant=row["participant"],
                customer_number=row["customer_number"],
                subject_id=row["subject_id"],
                categories=row["categories"],
                now=now,
                deadline=timedelta(days=7),
            ),
            id=record.event_id,
            time=parsed.envelope.time,
        )
        assert record.value == model.to_bytes()
    first = parse(PRIVACY_TASKS, records[0].value).data
    assert isinstance(first, PrivacyTask)
    assert [c.value for c in first.categories] == ["basic", "contact", "other_consented"]
    assert task_records([], sweep_id="sweep-1234", now=now, deadline=timedelta(days=7)) == []


async def test_batches_in_flight_at_once_issue_every_task_once(retention) -> None:
    customers = [new_customer() for _ in range(7)]
    async with retention.service.runtime.pool.acquire() as conn:
        await store.start_clocks(conn, [(c, "relationship_ended", "", ENDED) for c in customers])
    sweeper = dataclasses.replace(retention.service.sweeper, batch=2, workers=3)
    seen: list[tuple[int, int]] = []
    at = ENDED + timedelta(days=31)  # one task each: registry's other_consented
    async with TopicReader(PRIVACY_TASKS) as reader:
        result = await sweeper.sweep(at, progress=lambda done, total: seen.append((done, total)))
        records = await reader.wait_for(lambda r: any(c in r.value.decode() for c in customers), count=7)
        records = await reader.quiet(0.5)
    issued = {c: tasks_for(records, c) for c in customers}
    assert all(len(tasks) == 1 for tasks in issued.values()), issued
    assert result.tasks >= 7 and result.customers >= 7  # (and any other test's due clocks)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] == seen[-1][1] >= 7
    async with retention.service.runtime.pool.acquire() as conn:
        for c in customers:
            assert len(await store.purges_of(conn, c)) == 1


async def test_a_failing_batch_stops_the_sweep_with_its_own_error(retention, monkeypatch) -> None:
    customers = [new_customer() for _ in range(6)]
    async with retention.service.runtime.pool.acquire() as conn:
        await store.start_clocks(conn, [(c, "relationship_ended", "", ENDED) for c in customers])
    calls = 0
    issue = store.issue_purges

    async def failing_second(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 2:
            raise asyncpg.exceptions.SerializationError("synthetic failure of one batch")
        return await issue(*args, **kwargs)

    monkeypatch.setattr(store, "issue_purges", failing_second)
    sweeper = dataclasses.replace(retention.service.sweeper, batch=1, workers=2)
    with pytest.raises(asyncpg.exceptions.SerializationError):
        await sweeper.sweep(ENDED + timedelta(days=31))
    monkeypatch.setattr(store, "issue_purges", issue)
    # the lock is released, and the next sweep issues what the failed one left
    again = await retention.service.sweeper.sweep(ENDED + timedelta(days=32))
    async with retention.service.runtime.pool.acquire() as conn:
        assert all([len(await store.purges_of(conn, c)) == 1 for c in customers])
    assert again.tasks >= 1
