"""Retention end to end with real participants: three stores (registry-, billing- and recordings-
like), each a Participant on the real broker with its own database, holding rows per category
and deleting them on purge. A relationship ends, time moves past each period, and after each
sweep every store holds exactly what is not yet due; a hold keeps its data until released."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import asyncpg
from retention_events import ALL_REGISTRY, call_recorded, invoice_issued, relationship_ended, subject_changed

from lampo.contracts.catalog import PRIVACY_TASKS, RETENTION_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyTask
from lampo.crypto import new_master_key
from lampo.participant import Participant, TaskOutcome, subscribe
from lampo.retention import store
from lampo.retention.settings import DEFAULT_DATAMAP
from lampo.service import Runtime
from lampo.settings import ServiceSettings
from lampo.testing import (
    Producer,
    drop_database,
    eventually,
    fast_forward_group,
    running,
    signing_settings,
    trusted_keys_for,
    unique,
)

ENDED = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


class StoreSettings(ServiceSettings):
    service: ClassVar[str] = "teststore"


class Store:
    """A participant's store: rows (customer_number, category, item) in its own database."""

    def __init__(self, name: str, runtime: Runtime) -> None:
        self.name = name
        self.runtime = runtime

    async def add(self, customer: str, categories: list[str]) -> None:
        async with self.runtime.pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO held (customer_number, category, item) VALUES ($1, $2, $3)",
                [(customer, c, f"{c}-{n}") for c in categories for n in range(2)],
            )

    async def contents(self) -> dict[str, set[str]]:
        async with self.runtime.pool.acquire() as conn:
            rows = await conn.fetch("SELECT DISTINCT customer_number, category FROM held")
        found: dict[str, set[str]] = {}
        for r in rows:
            found.setdefault(r["customer_number"], set()).add(r["category"])
        return found


async def purge(conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
    erased: dict[str, int] = {}
    for category in task.categories:
        status = await conn.execute(
            "DELETE FROM held WHERE customer_number = ANY($1::text[]) AND category = $2",
            task.subject.customer_numbers,
            category.value,
        )
        erased[category.value] = int(status.split()[-1])
    return TaskOutcome(erased=erased)  # type: ignore[arg-type]


@asynccontextmanager
async def participant_store(name: str, migrations: Path) -> AsyncIterator[Store]:
    settings = StoreSettings(
        database=unique("test_store"), consumer_group=unique("test-store"), master_key=new_master_key(),
        signer=name, **signing_settings(name),
    )  # fmt: skip
    runtime = Runtime(settings, migrations=migrations)
    subscribe(runtime, Participant(name, {"purge": purge}))
    await fast_forward_group(settings.consumer_group or "", [PRIVACY_TASKS])
    try:
        async with running(runtime.app):
            yield Store(name, runtime)
    finally:
        await drop_database(settings.database or "")


def isolated_datamap(tmp_path: Path, suffix: str) -> Path:
    text = DEFAULT_DATAMAP.read_text(encoding="utf-8")
    for name in ("registry", "billing", "recordings"):
        text = text.replace(f'"{name}"', f'"{name}-{suffix}"')
    path = tmp_path / "datamap.toml"
    path.write_text(text, encoding="utf-8")
    return path


def new_customer() -> str:
    return str(uuid.uuid4().int % 10**9)


async def test_sweeps_purge_exactly_what_is_due_in_every_store_and_holds_keep_theirs(start_retention, tmp_path) -> None:
    suffix = uuid.uuid4().hex[:8]
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_held.sql").write_text(
        "CREATE TABLE held (customer_number text NOT NULL, category text NOT NULL, item text NOT NULL);"
    )
    async with AsyncExitStack() as stack:
        stores = [f"{name}-{suffix}" for name in ("registry", "billing", "recordings")]
        retention = await stack.enter_async_context(
            start_retention(datamap=isolated_datamap(tmp_path, suffix), trusted_keys=trusted_keys_for(*stores))
        )
        registry = await stack.enter_async_context(participant_store(f"registry-{suffix}", migrations))
        billing = await stack.enter_async_context(participant_store(f"billing-{suffix}", migrations))
        recordings = await stack.enter_async_context(participant_store(f"recordings-{suffix}", migrations))

        ended, active, prospect, held = (new_customer() for _ in range(4))
        for c in (ended, active, prospect, held):
            await registry.add(c, ALL_REGISTRY)
            await billing.add(c, ["billing"])
            await recordings.add(c, ["customer_relationship"])
        async with Producer() as p:
            for c in (ended, held):
                await subject_changed(p, c, f"subj-{c}", ENDED - timedelta(days=60))
                await relationship_ended(p, c, ENDED)
                await invoice_issued(p, c, ENDED + timedelta(days=5))  # financial year ends 31.12.2026
                await call_recorded(p, c, ENDED - timedelta(days=5))  # 10.1.2026
            await subject_changed(p, active, f"subj-{active}", ENDED)
            await invoice_issued(p, active, ENDED + timedelta(days=10))
            await call_recorded(p, active, datetime(2026, 6, 1, tzinfo=UTC))
            await subject_changed(p, prospect, f"subj-{prospect}", datetime(2026, 1, 20, 10, tzinfo=UTC))
            placed = {
                "hold_id": f"hold-{held}",
                "customer_number": held,
                "categories": [],
                "case_reference": "R 26/4711",
                "authority": "Keski-Suomen poliisilaitos",
                "placed_at": "2026-02-01T10:00:00Z",
            }
            await p.send(
                RETENTION_INBOUND, held, CloudEvent.new("legal_hold.placed", "urn:system:case-management", placed)
            )

        async def clocks_ready() -> bool:
            async with retention.service.runtime.pool.acquire() as conn:
                # only this test's customers: a running registry may announce others on the same topic
                mine = [ended, active, prospect, held]
                n = await conn.fetchval("SELECT count(*) FROM clocks WHERE customer_number = ANY($1::text[])", mine)
                holds = await conn.fetchval("SELECT count(*) FROM holds WHERE customer_number = ANY($1::text[])", mine)
            return n == 5 + 5 + 4 + 2 and holds == 1

        try:
            await eventually(clocks_ready, timeout=120)
        except AssertionError:
            async with retention.service.runtime.pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT customer_number, trigger, category FROM clocks WHERE customer_number = ANY($1::text[])",
                    [ended, active, prospect, held],
                )
            raise AssertionError(
                f"clocks {[tuple(r) for r in rows]}; stats {[(c.name, c.stats) for c in retention.service.runtime.consumers]}"
            ) from None

        everything = {
            "registry": set(ALL_REGISTRY),
            "billing": {"billing"},
            "recordings": {"customer_relationship"},
        }
        expected = {name: {c: set(cats) for c in (ended, active, prospect, held)} for name, cats in everything.items()}

        async def sweep_and_check(at: datetime, gone: dict[str, dict[str, set[str]]]) -> None:
            for name, per_customer in gone.items():
                for c, cats in per_customer.items():
                    expected[name][c] -= cats
                    if not expected[name][c]:
                        del expected[name][c]
            retention.clock.set(at)
            await retention.service.sweeper.sweep()

            async def all_answered() -> bool:
                async with retention.service.runtime.pool.acquire() as conn:
                    return (
                        await conn.fetchval(
                            "SELECT count(*) FROM purges WHERE status = 'issued' AND customer_number = ANY($1::text[])",
                            [ended, active, prospect, held],
                        )
                        == 0
                    )

            await eventually(all_answered, timeout=120)
            actual = {
                "registry": await registry.contents(),
                "billing": await billing.contents(),
                "recordings": await recordings.contents(),
            }
            mine = {
                name: {c: cats for c, cats in stored.items() if c in (ended, active, prospect, held)}
                for name, stored in actual.items()
            }
            assert mine == expected, at

        await sweep_and_check(ENDED + timedelta(days=29), {})
        await sweep_and_check(ENDED + timedelta(days=30), {"registry": {ended: {"other_consented"}}})
        await sweep_and_check(
            datetime(2027, 1, 15, 9, tzinfo=UTC),
            {"recordings": {ended: {"customer_relationship"}}, "registry": {ended: {"services"}}},
        )
        await sweep_and_check(
            datetime(2027, 1, 20, 10, tzinfo=UTC),
            {
                "registry": {prospect: set(ALL_REGISTRY)},
                "billing": {prospect: {"billing"}},
                "recordings": {prospect: {"customer_relationship"}},
            },
        )
        await sweep_and_check(datetime(2027, 6, 1, 0, tzinfo=UTC), {"recordings": {active: {"customer_relationship"}}})
        await sweep_and_check(
            datetime(2029, 1, 15, 9, tzinfo=UTC),
            {"registry": {ended: {"basic", "contact_person", "contact", "customer_relationship", "consumption"}}},
        )
        # 1.1.2033 in Finland: vouchers of 2026 are past their six years (the active customer's too:
        # a customer still invoiced would have newer invoices)
        await sweep_and_check(
            datetime(2032, 12, 31, 22, tzinfo=UTC), {"billing": {ended: {"billing"}, active: {"billing"}}}
        )
        # the hold kept everything of its customer until now
        assert expected["registry"][held] == set(ALL_REGISTRY)

        async with retention.service.runtime.pool.acquire() as conn, conn.transaction():
            from lampo.contracts.retention import LegalHoldReleased
            from lampo.retention.handlers import release_hold

            await release_hold(
                conn,
                LegalHoldReleased(
                    hold_id=f"hold-{held}", customer_number=held, released_at=datetime(2033, 1, 5, tzinfo=UTC)
                ),
                actor="operator.anna",
                interface="cli",
            )
        await sweep_and_check(
            datetime(2033, 1, 6, tzinfo=UTC),
            {
                "registry": {held: set(ALL_REGISTRY)},
                "billing": {held: {"billing"}},
                "recordings": {held: {"customer_relationship"}},
            },
        )
        assert expected["registry"] == {active: set(ALL_REGISTRY)}  # the active customer's register data stays

        async with retention.service.runtime.pool.acquire() as conn:
            proof = await store.purges_of(conn, ended)
        assert all(r["status"] == "done" for r in proof)
        assert {r["rule"]: r["erased"] for r in proof}["billing-vouchers"] == 2
