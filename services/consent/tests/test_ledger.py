"""The consent service on the real broker and database: every transition, the answers to bad
input, out-of-order and duplicate delivery, and what consent.events.v1 carries."""

from __future__ import annotations

import asyncpg
import pytest

from lampo.consent.cli import verdict
from lampo.contracts.catalog import CONSENT_EVENTS, CONSENT_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.messaging.topics import dlq
from lampo.testing import Producer, TopicReader, eventually, header


def about(consent, customer: str):  # type: ignore[no-untyped-def]
    """Records of this test's service instance about this customer."""
    source = consent.settings.event_source
    return lambda r: r.key == customer.encode() and CloudEvent.from_bytes(r.value).source == source


async def ledger(consent, customer: str) -> list[asyncpg.Record]:  # type: ignore[no-untyped-def]
    async with consent.runtime.pool.acquire() as conn:
        return await conn.fetch("SELECT * FROM ledger WHERE customer_number = $1 ORDER BY entry_id", customer)


async def test_consent_is_recorded_announced_and_receipted(consent, ev, customer) -> None:
    # how quickly it is announced is measured by bench/withdrawal (p50/p99 under load), not here
    async with TopicReader(CONSENT_EVENTS) as out, Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "profiling"))
        [record] = await out.wait_for(about(consent, customer))
    body = ev.data_of(record)
    assert body["purpose"] == "profiling" and body["state"] == "granted" and body["states"] == {"profiling": "granted"}
    assert body["effective_at"].startswith("2025-11-28T10:00:00")
    [entry] = await ledger(consent, customer)
    assert (entry["kind"], entry["outcome"], entry["channel"], entry["consent_text_version"]) == (
        "consent.given",
        "changed",
        "portal",
        "profiling-2026-01",
    )
    async with consent.runtime.pool.acquire() as conn:
        [receipt] = await conn.fetch("SELECT receipt FROM receipts WHERE customer_number = $1", customer)
    assert receipt["receipt"]["piiPrincipalId"] == customer and receipt["receipt"]["jurisdiction"] == "FI"
    assert (await verdict(consent.settings.database_url, customer, "profiling")).allowed


async def test_withdrawal_takes_effect_at_once(consent, ev, customer) -> None:
    async with TopicReader(CONSENT_EVENTS) as out, Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "profiling", 0))
        await producer.send(CONSENT_INBOUND, customer, ev.withdrawn(customer, "profiling", 1))
        records = await out.wait_for(about(consent, customer), count=2)
    assert [ev.data_of(r)["state"] for r in records] == ["granted", "withdrawn"]
    answer = await verdict(consent.settings.database_url, customer, "profiling")
    assert not answer.allowed and "withdrawn" in answer.reason


async def test_withdrawal_without_prior_consent_is_recorded_and_explained(consent, ev, customer) -> None:
    async with TopicReader(CONSENT_EVENTS) as out, Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, ev.withdrawn(customer, "direct_marketing"))
        [record] = await out.wait_for(about(consent, customer))
    assert ev.data_of(record)["state"] == "withdrawn"
    [entry] = await ledger(consent, customer)
    assert (entry["outcome"], entry["state_after"], entry["note"]) == ("changed", "withdrawn", "no prior consent")


async def test_objection_to_direct_marketing_is_absolute_and_outlives_a_withdrawal(consent, ev, customer) -> None:
    async with TopicReader(CONSENT_EVENTS) as out, Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "direct_marketing", 0))
        await producer.send(CONSENT_INBOUND, customer, ev.objection(customer, "direct_marketing", 1))
        await producer.send(CONSENT_INBOUND, customer, ev.withdrawn(customer, "direct_marketing", 2))
        await out.wait_for(about(consent, customer), count=2)
        await eventually(lambda: consent.inbound.stats.processed >= 3)
        records = [r for r in await out.quiet(0.5) if about(consent, customer)(r)]
    assert [ev.data_of(r)["state"] for r in records] == ["granted", "objected"]
    entries = await ledger(consent, customer)
    assert [(e["kind"], e["outcome"], e["state_after"]) for e in entries] == [
        ("consent.given", "changed", "granted"),
        ("objection.filed", "changed", "objected"),
        ("consent.withdrawn", "unchanged", "objected"),
    ]
    answer = await verdict(consent.settings.database_url, customer, "direct_marketing")
    assert not answer.allowed and "Art. 21(3)" in answer.reason


async def test_objection_to_processing_covers_every_purpose_and_automated_decisions_is_exposed(
    consent, ev, customer
) -> None:
    async with TopicReader(CONSENT_EVENTS) as out, Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "profiling", 0))
        await producer.send(CONSENT_INBOUND, customer, ev.objection(customer, "automated_decisions", 1))
        await producer.send(CONSENT_INBOUND, customer, ev.objection(customer, "processing", 2))
        records = await out.wait_for(about(consent, customer), count=4)
    assert ev.data_of(records[1])["purpose"] == "automated_decisions"
    assert ev.data_of(records[-1])["states"] == {
        "automated_decisions": "objected",
        "direct_marketing": "objected",
        "profiling": "objected",
    }
    answer = await verdict(consent.settings.database_url, customer, "automated_decisions")
    assert not answer.allowed and "objection" in answer.reason


async def test_unknown_purpose_is_dead_lettered_and_the_next_event_is_processed(consent, ev, customer) -> None:
    async with TopicReader(dlq(CONSENT_INBOUND)) as dead, TopicReader(CONSENT_EVENTS) as out, Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "telepathy"))
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "profiling"))
        [record, *_] = await dead.wait_for(lambda r: r.key == customer.encode())
        [changed] = await out.wait_for(about(consent, customer))
    assert header(record, "error.reason") == "unknown_purpose"
    assert "telepathy" not in (header(record, "error.detail") or "")
    assert ev.data_of(changed)["purpose"] == "profiling"
    assert [e["purpose"] for e in await ledger(consent, customer)] == ["profiling"]
    answer = await verdict(consent.settings.database_url, customer, "telepathy")
    assert not answer.allowed and "unknown purpose" in answer.reason


async def test_an_unknown_customer_number_is_accepted(consent, ev, customer) -> None:
    """No customer register here: a consent may come before the customer record (a prospect)."""
    async with TopicReader(CONSENT_EVENTS) as out, Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "direct_marketing"))
        [record] = await out.wait_for(about(consent, customer))
    assert ev.data_of(record)["state"] == "granted"
    assert len(await ledger(consent, customer)) == 1


async def test_out_of_order_delivery_keeps_the_newest_state_and_the_older_event_as_proof(consent, ev, customer) -> None:
    async with TopicReader(CONSENT_EVENTS) as out, Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, ev.withdrawn(customer, "profiling", 5))
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "profiling", 1))  # older, arrives later
        await out.wait_for(about(consent, customer))
        await eventually(lambda: consent.inbound.stats.processed >= 2)
        records = [r for r in await out.quiet(0.5) if about(consent, customer)(r)]
    assert [ev.data_of(r)["state"] for r in records] == ["withdrawn"]  # the stale event published nothing
    entries = await ledger(consent, customer)
    assert [(e["kind"], e["outcome"]) for e in entries] == [
        ("consent.withdrawn", "changed"),
        ("consent.given", "stale"),
    ]
    assert "older than the current state" in entries[1]["note"]
    assert not (await verdict(consent.settings.database_url, customer, "profiling")).allowed


async def test_duplicate_delivery_has_one_effect(consent, ev, customer) -> None:
    event = ev.given(customer, "profiling")
    async with TopicReader(CONSENT_EVENTS) as out, Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, event)
        await producer.send(CONSENT_INBOUND, customer, event)
        await out.wait_for(about(consent, customer))
        await eventually(lambda: consent.inbound.stats.duplicates >= 1)
        records = [r for r in await out.quiet(0.5) if about(consent, customer)(r)]
    assert len(records) == 1
    assert len(await ledger(consent, customer)) == 1


async def test_the_last_record_per_customer_holds_every_purpose_for_compaction(consent, ev, customer) -> None:
    async with TopicReader(CONSENT_EVENTS) as out, Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "profiling", 0))
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "direct_marketing", 1))
        await producer.send(CONSENT_INBOUND, customer, ev.withdrawn(customer, "profiling", 2))
        records = await out.wait_for(about(consent, customer), count=3)
    assert all(r.key == customer.encode() for r in records)  # the contract's key
    last = ev.data_of(records[-1])
    assert (last["purpose"], last["state"]) == ("profiling", "withdrawn")
    assert last["states"] == {"direct_marketing": "granted", "profiling": "withdrawn"}


async def test_the_ledger_and_receipts_refuse_update_and_delete(consent, ev, customer) -> None:
    async with Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "profiling"))
    await eventually(lambda: consent.inbound.stats.processed >= 1)
    async with consent.runtime.pool.acquire() as conn:
        for statement in (
            "UPDATE ledger SET outcome = 'stale' WHERE customer_number = $1",
            "DELETE FROM ledger WHERE customer_number = $1",
            "DELETE FROM receipts WHERE customer_number = $1",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement, customer)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("TRUNCATE ledger")
    assert len(await ledger(consent, customer)) == 1
