"""The consent service as a privacy participant (every task kind: issue #15), the resolve route,
and the query command, on the real broker and database."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from typer.testing import CliRunner

from lampo.consent.cli import app as cli
from lampo.consent.cli import verdict
from lampo.contracts.catalog import CONSENT_EVENTS, CONSENT_INBOUND, PRIVACY_ACKS, PRIVACY_TASKS
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyTask
from lampo.crypto import new_request_keypair, unseal
from lampo.testing import Producer, TopicReader, eventually


def task(kind: str, customer: str, result_key: str | None = None, **extra: object) -> PrivacyTask:
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
            **extra,
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
        await out.wait_for(
            lambda r: r.key == customer.encode() and CloudEvent.from_bytes(r.value).source == mine, count=2
        )
        ack = await ask(consent, task("erasure", customer))
        # the granted purpose can no longer be demonstrated: announced as withdrawn
        [after] = await out.wait_for(
            lambda r: (
                r.key == customer.encode()
                and CloudEvent.from_bytes(r.value).source == mine
                and ev.data_of(r)["state"] == "withdrawn"
            )
        )
    assert ack["status"] == "done" and ack["erased"] == {"customer_relationship": 4}  # 2 ledger rows, 2 receipts
    assert ack["retained"] == [
        {
            "category": "customer_relationship",
            "items": 1,
            "legal_basis": "GDPR Art. 21(3): objection honoured",
            "until": None,
        }
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
        CliRunner().invoke,
        cli,
        ["check", customer, "direct_marketing"],
        env={"LAMPO_DATABASE": consent.settings.database},
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


# -- every task kind (issue #15), resolve ---------------------------------------------------------

TOKEN = "test-dsar-token"
CALLERS = {"dsar": TOKEN, "staff": "test-staff-token"}


def about(consent, customer: str):  # type: ignore[no-untyped-def]
    """Records of this test's service instance about this customer."""
    source = consent.settings.event_source
    return lambda r: r.key == customer.encode() and CloudEvent.from_bytes(r.value).source == source


async def ledger_rows(consent, customer: str) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    """The ledger as proof reads it, without what differs per event (ids, times, source)."""
    async with consent.runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT kind, purpose, scope, channel, consent_text_version, outcome, state_after, note FROM ledger"
            " WHERE customer_number = $1 ORDER BY entry_id",
            customer,
        )
    return [tuple(r.values()) for r in rows]


async def test_every_kind_is_done_for_a_customer_consent_has_never_seen(consent, customer) -> None:
    for kind, extra in [
        ("erasure", {}),
        ("purge", {}),
        ("rectification", {}),
        ("restriction", {}),
        ("restriction", {"lift": True}),
    ]:
        ack = await ask(consent, task(kind, customer, **extra))
        assert ack["status"] == "done", (kind, ack)
        assert ack["erased"] == {} and ack["retained"] == []
        if kind not in ("erasure", "purge"):
            assert [(e["action"], e["category"]) for e in ack["effects"]] == [("nothing_held", "customer_relationship")]
    async with consent.runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM restrictions") == 0


async def test_rectification_changes_nothing_as_receipts_name_the_customer_number_only(consent, ev, customer) -> None:
    async with Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "profiling", 0))
    await eventually(lambda: consent.inbound.stats.processed >= 1)
    before = await ledger_rows(consent, customer)
    ack = await ask(consent, task("rectification", customer, corrections={"contact": {"email": "uusi@example.fi"}}))
    assert ack["status"] == "done" and [e["action"] for e in ack["effects"]] == ["nothing_held"]
    assert await ledger_rows(consent, customer) == before


async def test_an_objection_task_is_recorded_and_announced_exactly_like_objection_filed(consent, ev, customer) -> None:
    other = str(uuid.uuid4().int % 10**9)  # objects through the CRM instead
    async with TopicReader(CONSENT_EVENTS) as out, Producer() as producer:
        for c in (customer, other):
            await producer.send(CONSENT_INBOUND, c, ev.given(c, "profiling", 0))
            await producer.send(CONSENT_INBOUND, c, ev.given(c, "direct_marketing", 0))
        for c in (customer, other):
            await out.wait_for(about(consent, c), count=2)
        await producer.send(CONSENT_INBOUND, other, ev.objection(other, "processing", 1))
        filed = await out.wait_for(about(consent, other), count=5)
        t = task("objection", customer, scope="processing")
        ack = await ask(consent, t)
        announced = await out.wait_for(about(consent, customer), count=5)
        # The same request again (a re-planned task, a new task id): nothing recorded twice.
        again = await ask(consent, t.model_copy(update={"task_id": f"task-{uuid.uuid4().hex[:12]}"}))
        # A marker: a consent given again after the objection (in two years) is announced next.
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "profiling", 3 * 365 * 24 * 60))
        after = await out.wait_for(about(consent, customer), count=6)

    assert ack["status"] == "done"
    [effect] = ack["effects"]
    assert (effect["action"], effect["category"], effect["items"]) == ("objection_recorded", "customer_relationship", 3)
    assert "Art. 21" in effect["legal_basis"] and effect["at"] is not None
    assert (await ledger_rows(consent, customer))[:5] == await ledger_rows(consent, other)
    assert [e["action"] for e in again["effects"]] == ["objection_recorded"]
    assert len(await ledger_rows(consent, customer)) == 2 + 3 + 1  # consents, objection once, the marker

    def shape(records):  # type: ignore[no-untyped-def]
        return [(d["purpose"], d["state"], d["states"]) for d in (ev.data_of(r) for r in records)]

    assert shape(announced[2:]) == shape(filed[2:])
    assert {d["state"] for d in (ev.data_of(r) for r in announced[2:])} == {"objected"}
    assert (ev.data_of(after[5])["purpose"], ev.data_of(after[5])["state"]) == ("profiling", "granted")
    assert len(after) == 6  # the repeated task announced nothing
    async with consent.runtime.pool.acquire() as conn:
        receipts = await conn.fetchval("SELECT count(*) FROM receipts WHERE customer_number = $1", customer)
    assert receipts == 2 + 3 + 1  # a receipt per change of state, as for objection.filed, and the marker
    answer = await verdict(consent.settings.database_url, customer, "direct_marketing")
    assert not answer.allowed and "objection (processing)" in answer.reason


async def test_restriction_stops_every_purpose_until_lifted_and_announces_no_false_withdrawal(
    consent, ev, customer
) -> None:
    async with TopicReader(CONSENT_EVENTS) as out, Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "profiling", 0))
        await out.wait_for(about(consent, customer))
        assert (await verdict(consent.settings.database_url, customer, "profiling")).allowed

        restricted = await ask(consent, task("restriction", customer))
        answer = await verdict(consent.settings.database_url, customer, "profiling")
        assert not answer.allowed and "restricted" in answer.reason and "Art. 18" in answer.reason
        # A later consent event is still recorded and announced; the restriction itself was not:
        # the next record about the customer is this one.
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "direct_marketing", 1))
        records = await out.wait_for(about(consent, customer), count=2)
        assert [(ev.data_of(r)["purpose"], ev.data_of(r)["state"]) for r in records] == [
            ("profiling", "granted"),
            ("direct_marketing", "granted"),
        ]
        assert not (await verdict(consent.settings.database_url, customer, "direct_marketing")).allowed

    [effect] = restricted["effects"]
    assert (effect["action"], effect["items"]) == ("restricted", 3)  # ledger row, receipt, state
    private, public = new_request_keypair()
    ack = await ask(consent, task("access", customer, public))
    mine = json.loads(unseal(private, ack["result"]))["customers"][customer]
    assert mine["restricted_since"] == effect["at"].replace("Z", "+00:00")

    lifted = await ask(consent, task("restriction", customer, lift=True))
    [effect] = lifted["effects"]
    assert (effect["action"], effect["items"]) == ("restriction_lifted", 1) and effect["at"] is not None
    assert (await verdict(consent.settings.database_url, customer, "profiling")).allowed
    assert (await verdict(consent.settings.database_url, customer, "direct_marketing")).allowed


async def test_every_item_of_access_says_its_origin_and_that_it_is_kept_as_proof(consent, ev, customer) -> None:
    async with Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "profiling", 0))
        await producer.send(CONSENT_INBOUND, customer, ev.objection(customer, "direct_marketing", 1))
    await eventually(lambda: consent.inbound.stats.processed >= 2)
    private, public = new_request_keypair()
    ack = await ask(consent, task("access", customer, public))
    mine = json.loads(unseal(private, ack["result"]))["customers"][customer]
    assert (mine["origin"], mine["legal_basis"]) == ("controller", "legal_obligation")
    assert "Art. 7(1)" in mine["legal_basis_reference"]
    items = mine["ledger"] + mine["receipts"] + list(mine["current"].values())
    assert len(items) == 2 + 2 + 2
    assert {i["legal_basis"] for i in items} == {"legal_obligation"}  # never consent or contract: not portable
    assert {e["origin"] for e in mine["ledger"]} == {"subject"}
    assert {r["origin"] for r in mine["receipts"]} == {"controller"}


async def test_resolve_answers_a_customer_number_only_the_consent_ledger_knows(start_consent, ev, customer) -> None:
    async with start_consent(api_clients=CALLERS) as consent:
        async with Producer() as producer:
            await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "profiling", 0))
        await eventually(lambda: consent.inbound.stats.processed >= 1)
        transport = httpx.ASGITransport(app=consent.runtime.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://consent") as http:

            async def resolve(body: object, token: str | None = TOKEN) -> httpx.Response:
                headers = {"authorization": f"Bearer {token}"} if token else {}
                return await http.post("/v1/resolve", content=json.dumps(body).encode(), headers=headers)

            known = await resolve({"customer_number": customer})
            assert (known.status_code, known.json()) == (200, {"customer_numbers": [customer]})
            unknown = await resolve({"customer_number": "nobody-here"})
            assert (unknown.status_code, unknown.json()) == (404, {"error": "no_match"})
            assert (await resolve({"customer_number": customer}, token=None)).status_code == 401
            assert (await resolve({"customer_number": customer}, token="wrong")).status_code == 401
            # another caller of the suite (staff) is known, and still not answered here
            assert (await resolve({"customer_number": customer}, token="test-staff-token")).status_code == 403
            bad = await resolve({"customer_number": ""})
            assert (bad.status_code, bad.json()) == (
                422,
                {"error": "invalid_customer_number", "field": "customer_number"},
            )
            assert (await resolve({"email": "x"})).json() == {"error": "invalid_email", "field": "email"}
