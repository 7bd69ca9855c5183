"""The consent service as a privacy participant, and the query command, on the real broker and database."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from lampo.consent.cli import app as cli
from lampo.contracts.catalog import CONSENT_EVENTS, CONSENT_INBOUND, PRIVACY_ACKS, PRIVACY_TASKS
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyTask
from lampo.crypto import new_request_keypair, unseal
from lampo.testing import Producer, TopicReader, eventually


def task(kind: str, customer: str, result_key: str | None = None) -> PrivacyTask:
    return PrivacyTask.model_validate(
        {
            "request_id": f"req-{uuid.uuid4().hex[:12]}",
            "task_id": f"task-{uuid.uuid4().hex[:12]}",
            "participant": "consent",
            "kind": kind,
            "subject": {"subject_id": f"subj-{uuid.uuid4().hex[:8]}", "customer_numbers": [customer]},
            "categories": ["customer_relationship"],
            "attempt": 1,
            "deadline": datetime.now(UTC) + timedelta(days=30),
            "result_key": result_key,
        }
    )


async def ask(consent, t: PrivacyTask) -> dict:  # type: ignore[no-untyped-def, type-arg]
    async with TopicReader(PRIVACY_ACKS) as acks, Producer() as producer:
        await producer.send(
            PRIVACY_TASKS, t.request_id, CloudEvent.new("privacy.task", "urn:lampo:dsar", t), signer="coordinator"
        )
        source = consent.settings.event_source
        [ack] = await acks.wait_for(
            lambda r: (e := CloudEvent.from_bytes(r.value)).data["task_id"] == t.task_id and e.source == source
        )
    return CloudEvent.from_bytes(ack.value).data


async def test_access_returns_the_ledger_and_the_receipts(consent, ev, customer) -> None:
    async with Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "profiling", 0))
        await producer.send(CONSENT_INBOUND, customer, ev.withdrawn(customer, "profiling", 1))
    await eventually(lambda: consent.inbound.stats.processed >= 2)
    private, public = new_request_keypair()
    ack = await ask(consent, task("access", customer, public))
    assert ack["status"] == "done"
    result = json.loads(unseal(private, ack["result"]))
    mine = result["customers"][customer]
    assert [e["kind"] for e in mine["ledger"]] == ["consent.given", "consent.withdrawn"]
    assert [r["services"][0]["purposes"][0]["state"] for r in mine["receipts"]] == ["granted", "withdrawn"]
    assert mine["current"]["profiling"]["state"] == "withdrawn"


async def test_erasure_keeps_only_a_suppression_entry_to_honour_an_objection(consent, ev, customer) -> None:
    async with TopicReader(CONSENT_EVENTS) as out, Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "profiling", 0))
        await producer.send(CONSENT_INBOUND, customer, ev.objection(customer, "direct_marketing", 1))
        mine = consent.settings.event_source
        await out.wait_for(lambda r: r.key == customer.encode() and CloudEvent.from_bytes(r.value).source == mine, count=2)
        ack = await ask(consent, task("erasure", customer))
        # the granted purpose can no longer be demonstrated: announced as withdrawn
        [after] = await out.wait_for(
            lambda r: r.key == customer.encode()
            and CloudEvent.from_bytes(r.value).source == mine
            and ev.data_of(r)["state"] == "withdrawn"
        )
    assert ack["status"] == "done" and ack["erased"] == {"customer_relationship": 4}  # 2 ledger rows, 2 receipts
    assert ack["retained"] == [
        {"category": "customer_relationship", "items": 1, "legal_basis": "GDPR Art. 21(3): objection honoured", "until": None}
    ]
    assert ev.data_of(after)["states"] == {"direct_marketing": "objected", "profiling": "withdrawn"}
    async with consent.runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ledger WHERE customer_number = $1", customer) == 0
        assert await conn.fetchval("SELECT count(*) FROM receipts WHERE customer_number = $1", customer) == 0
        rows = await conn.fetch("SELECT * FROM suppressions WHERE customer_number = $1", customer)
    assert [(r["customer_number"], r["scope"]) for r in rows] == [(customer, "direct_marketing")]
    assert set(rows[0].keys()) == {"customer_number", "scope", "since"}

    # The objection is still honoured; a stale redelivery of the old consent does not lift it.
    async with Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "direct_marketing", 0))
    await eventually(lambda: consent.inbound.stats.processed >= 3)
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["check", customer, "direct_marketing"], env={"LAMPO_DATABASE": consent.settings.database}
    )
    assert result.exit_code == 1 and "not allowed" in result.output and "suppression" in result.output


async def test_check_command_exit_code_says_whether_a_purpose_may_use_a_customer(consent, ev, customer) -> None:
    async with Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "direct_marketing"))
    await eventually(lambda: consent.inbound.stats.processed >= 1)
    env = {"LAMPO_DATABASE": consent.settings.database}
    runner = CliRunner()
    allowed = await asyncio.to_thread(runner.invoke, cli, ["check", customer, "direct_marketing"], env=env)
    assert allowed.exit_code == 0 and allowed.output.startswith("allowed")
    refused = await asyncio.to_thread(runner.invoke, cli, ["check", customer, "profiling"], env=env)
    assert refused.exit_code == 1 and "not allowed" in refused.output and "no consent recorded" in refused.output
