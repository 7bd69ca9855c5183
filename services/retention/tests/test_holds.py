"""Legal holds on the real broker and database: placed and released from retention.inbound.v1
and from the CLI, published as the customer's current holds, audited, bad releases dead-lettered."""

from __future__ import annotations

import json
import uuid

from typer.testing import CliRunner

from lampo.contracts.catalog import RETENTION_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.messaging.topics import dlq
from lampo.retention import store
from lampo.retention.domain import HOLDS_TOPIC
from lampo.testing import Producer, TopicReader, eventually, header

AUTHORITY_SOURCE = "urn:system:case-management"


def customer_number() -> str:
    return str(uuid.uuid4().int % 10**9)


def placed(hold_id: str, customer: str, categories: list[str] | None = None, case: str = "R 26/1234") -> CloudEvent:
    return CloudEvent.new(
        "legal_hold.placed",
        AUTHORITY_SOURCE,
        {
            "hold_id": hold_id,
            "customer_number": customer,
            "categories": categories or [],
            "case_reference": case,
            "authority": "Keski-Suomen poliisilaitos",
            "placed_at": "2026-02-01T10:00:00Z",
        },
    )


def released(hold_id: str, customer: str) -> CloudEvent:
    return CloudEvent.new(
        "legal_hold.released",
        AUTHORITY_SOURCE,
        {"hold_id": hold_id, "customer_number": customer, "released_at": "2026-03-01T10:00:00Z"},
    )


def state_of(record) -> dict:  # type: ignore[no-untyped-def]
    body = json.loads(record.value)
    assert body["type"] == "legal_hold.state"
    return body["data"]


async def test_holds_are_published_as_the_current_state_per_customer_and_audited(retention) -> None:
    customer = customer_number()
    first, second = f"h-{uuid.uuid4().hex[:8]}", f"h-{uuid.uuid4().hex[:8]}"
    mine = lambda r: r.key == customer.encode()  # noqa: E731
    async with TopicReader(HOLDS_TOPIC) as states, Producer() as producer:
        await producer.send(RETENTION_INBOUND, customer, placed(first, customer, ["billing"]))
        await producer.send(RETENTION_INBOUND, customer, placed(second, customer, [], case="R 26/99"))
        await producer.send(RETENTION_INBOUND, customer, released(first, customer))
        await producer.send(RETENTION_INBOUND, customer, released(second, customer))
        records = await states.wait_for(mine, count=4)

    s1, s2, s3, s4 = (state_of(r) for r in records)
    assert s1 == {
        "customer_number": customer,
        "holds": [
            {
                "hold_id": first,
                "categories": ["billing"],
                "case_reference": "R 26/1234",
                "authority": "Keski-Suomen poliisilaitos",
                "placed_at": "2026-02-01T10:00:00Z",
            }
        ],
    }
    assert {h["hold_id"]: h["categories"] for h in s2["holds"]} == {first: ["billing"], second: []}
    assert [h["hold_id"] for h in s3["holds"]] == [second]
    assert s4 == {"customer_number": customer, "holds": []}  # empty after the last release

    async with retention.service.runtime.pool.acquire() as conn:
        trail = await store.audit_of(conn, first)
    assert [(a["action"], a["interface"], a["actor"]) for a in trail] == [
        ("placed", "kafka:retention.inbound.v1", AUTHORITY_SOURCE),
        ("released", "kafka:retention.inbound.v1", AUTHORITY_SOURCE),
    ]
    assert all(a["event_id"] and a["recorded_at"] for a in trail)
    assert trail[0]["detail"] == {
        "categories": ["billing"],
        "case_reference": "R 26/1234",
        "authority": "Keski-Suomen poliisilaitos",
    }


async def test_placing_the_same_hold_twice_is_idempotent(retention) -> None:
    customer = customer_number()
    hold_id = f"h-{uuid.uuid4().hex[:8]}"
    async with TopicReader(HOLDS_TOPIC) as states, Producer() as producer:
        await producer.send(RETENTION_INBOUND, customer, placed(hold_id, customer))
        await producer.send(RETENTION_INBOUND, customer, placed(hold_id, customer))
        await states.wait_for(lambda r: r.key == customer.encode())
        await eventually(lambda: retention.service.consumer("retention:holds").stats.processed >= 2)
        later = await states.quiet(1.0)
    assert len([r for r in later if r.key == customer.encode()]) == 1  # state published once
    async with retention.service.runtime.pool.acquire() as conn:
        assert len(await store.list_holds(conn, customer, include_released=True)) == 1
        assert [a["action"] for a in await store.audit_of(conn, hold_id)] == ["placed", "placed_again"]


async def test_releasing_an_unknown_hold_is_dead_lettered(retention) -> None:
    customer = customer_number()
    async with TopicReader(dlq(RETENTION_INBOUND)) as dead, Producer() as producer:
        await producer.send(RETENTION_INBOUND, customer, released("never-placed", customer))
        [record] = await dead.wait_for(lambda r: r.key == customer.encode())
    assert header(record, "error.reason") == "unknown_hold"
    assert "hold_id" in (header(record, "error.detail") or "")


async def test_the_audit_trail_is_append_only(retention) -> None:
    import asyncpg
    import pytest

    customer = customer_number()
    async with Producer() as producer:
        await producer.send(RETENTION_INBOUND, customer, placed("h-append", customer))
    await eventually(lambda: retention.service.consumer("retention:holds").stats.processed >= 1)
    async with retention.service.runtime.pool.acquire() as conn:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM hold_audit")


async def test_cli_places_lists_and_releases_holds_audited_with_the_operator(retention, monkeypatch) -> None:
    from lampo.retention.cli import app

    settings = retention.settings
    monkeypatch.setenv("LAMPO_DATABASE", settings.database)
    monkeypatch.setenv("COLUMNS", "250")
    customer = customer_number()
    runner = CliRunner()
    async with TopicReader(HOLDS_TOPIC) as states:
        result = await _invoke(
            runner,
            app,
            [
                "holds",
                "place",
                customer,
                "--case",
                "KKO 2026/7",
                "--authority",
                "Helsingin käräjäoikeus",
                "--category",
                "billing",
                "--hold-id",
                "cli-1",
                "--actor",
                "operator.anna",
            ],
        )
        assert result.exit_code == 0, result.output
        [record] = await states.wait_for(lambda r: r.key == customer.encode())
        assert state_of(record)["holds"][0]["case_reference"] == "KKO 2026/7"

        listed = await _invoke(runner, app, ["holds", "list", "--customer", customer])
        assert "cli-1" in listed.output and "KKO 2026/7" in listed.output

        unknown = await _invoke(runner, app, ["holds", "release", "nope", "--customer", customer])
        assert unknown.exit_code == 1 and "unknown_hold" in unknown.output

        result = await _invoke(
            runner, app, ["holds", "release", "cli-1", "--customer", customer, "--actor", "operator.anna"]
        )
        assert result.exit_code == 0, result.output
        records = await states.wait_for(lambda r: r.key == customer.encode(), count=2)
        assert state_of(records[1])["holds"] == []

    async with retention.service.runtime.pool.acquire() as conn:
        trail = await store.audit_of(conn, "cli-1")
    assert [(a["action"], a["actor"], a["interface"]) for a in trail] == [
        ("placed", "operator.anna", "cli"),
        ("released", "operator.anna", "cli"),
    ]


async def _invoke(runner: CliRunner, app, args: list[str]):  # type: ignore[no-untyped-def]
    """The CLI runs its own event loop: run it in a thread, off the test's loop."""
    import asyncio

    return await asyncio.to_thread(runner.invoke, app, args)
