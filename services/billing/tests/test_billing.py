"""The billing store on the real broker and database: ingest, access, erasure with and without
statutory retention (the clock moves), scheduled deletions, idempotent tasks, bad input; every
task kind (issue #15: rectification, restriction and its lift, objection, portability marks),
the resolve route, and legal holds stopping the scheduled deletions (issue #16)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx

from lampo.billing.domain import VOUCHER_NOT_ALTERED
from lampo.billing.handlers import purge_due
from lampo.billing.store import BillingStore
from lampo.contracts.catalog import BILLING_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.crypto import new_request_keypair, unseal
from lampo.messaging.topics import dlq
from lampo.testing import Producer, TopicReader, eventually, header, privacy_task, run_privacy_task, unique

SOURCE = "urn:system:billing"
LINE_TEXT = "Kaukolämpö 11/2026, Testi Asiakas901, Testikatu 9 Muurame"
CREDIT_RESULT = "Maksuhäiriömerkintä: Testi Asiakas901"
AGENCY = "Perintä Testi Oy"


def new_customer_number() -> str:
    return str(uuid.uuid4().int % 10**9)


def events(customer: str, year: int = 2026) -> list[CloudEvent]:
    """Two invoices (the second unpaid and in collection), a payment and a credit check."""
    return [
        CloudEvent.new(
            "credit.checked",
            SOURCE,
            {
                "customer_number": customer,
                "checked_at": f"{year}-02-01T09:00:00Z",
                "provider": "Luottotieto Testi",
                "result": CREDIT_RESULT,
            },
        ),
        CloudEvent.new(
            "invoice.issued",
            SOURCE,
            {
                "customer_number": customer,
                "invoice_number": f"INV-{customer}-1",
                "issued_at": f"{year}-03-01T08:00:00Z",
                "due_date": f"{year}-03-21",
                "total_eur": "120.50",
                "lines": [{"text": LINE_TEXT, "amount_eur": "120.50"}],
            },
        ),
        CloudEvent.new(
            "payment.received",
            SOURCE,
            {
                "customer_number": customer,
                "invoice_number": f"INV-{customer}-1",
                "paid_at": f"{year}-03-20T12:00:00Z",
                "amount_eur": "120.50",
            },
        ),
        CloudEvent.new(
            "invoice.issued",
            SOURCE,
            {
                "customer_number": customer,
                "invoice_number": f"INV-{customer}-2",
                "issued_at": f"{year}-04-01T08:00:00Z",
                "due_date": f"{year}-04-21",
                "total_eur": "99.00",
                "lines": [{"text": LINE_TEXT, "amount_eur": "99.00"}],
            },
        ),
        CloudEvent.new(
            "collection.opened",
            SOURCE,
            {
                "customer_number": customer,
                "invoice_number": f"INV-{customer}-2",
                "agency": AGENCY,
                "opened_at": f"{year}-06-01T08:00:00Z",
            },
        ),
    ]


async def dead_letters(reader: TopicReader, key: str, count: int) -> list[Any]:
    """The DLQ copies of ``count`` distinct records with this key, in their original order. A
    rebalance at start-up (two consumers of the service share one group) may redeliver a batch,
    so a record can be dead-lettered twice: at least once is the guarantee, so dedupe on offset."""
    wanted = count
    while True:
        records = await reader.wait_for(lambda r: r.key == key.encode(), count=wanted)
        distinct = {(header(r, "error.partition"), header(r, "error.offset")): r for r in reversed(records)}
        if len(distinct) >= count:
            return sorted(distinct.values(), key=lambda r: int(header(r, "error.offset") or 0))
        wanted = len(records) + 1


async def ingest(billing, customer: str, year: int = 2026) -> None:
    async with Producer() as producer:
        for event in events(customer, year):
            await producer.send(BILLING_INBOUND, customer, event)
    async with billing.runtime.pool.acquire() as conn:
        await eventually(
            lambda: conn.fetchval("SELECT count(*) = 5 FROM items WHERE customer_number = $1", customer), timeout=30
        )


async def test_ingest_stores_encrypted_and_access_returns_everything_per_category(billing) -> None:
    customer = new_customer_number()
    await ingest(billing, customer)
    async with billing.runtime.pool.acquire() as conn:
        payloads = [
            bytes(r["payload"])
            for r in await conn.fetch("SELECT payload FROM items WHERE customer_number = $1", customer)
        ]
    assert all(b"Asiakas901" not in p and "Kaukolämpö".encode() not in p for p in payloads)

    private, public = new_request_keypair()
    [ack] = await run_privacy_task(
        privacy_task(billing.settings.participant_name, "access", customer, result_key=public)
    )
    assert ack["status"] == "done"
    result = json.loads(unseal(private, ack["result"]))
    billing_data = result["billing"]
    assert [i["invoice_number"] for i in billing_data["invoices"]] == [f"INV-{customer}-1", f"INV-{customer}-2"]
    assert billing_data["invoices"][0]["lines"] == [{"text": LINE_TEXT, "amount_eur": "120.50"}]
    assert billing_data["payments"][0]["amount_eur"] == "120.50"
    assert billing_data["collections"][0]["agency"] == AGENCY
    assert billing_data["credit_checks"][0]["result"] == CREDIT_RESULT
    assert all(i["restricted"] is None for items in billing_data.values() for i in items)


async def test_bad_input_is_dead_lettered_with_its_reason_and_the_consumer_goes_on(billing) -> None:
    customer = new_customer_number()
    unknown_payment = CloudEvent.new(
        "payment.received",
        SOURCE,
        {
            "customer_number": customer,
            "invoice_number": "NO-SUCH-1",
            "paid_at": "2026-03-20T12:00:00Z",
            "amount_eur": "1.00",
        },
    )
    unknown_collection = CloudEvent.new(
        "collection.opened",
        SOURCE,
        {
            "customer_number": customer,
            "invoice_number": "NO-SUCH-2",
            "agency": AGENCY,
            "opened_at": "2026-03-20T12:00:00Z",
        },
    )
    bad_amount = CloudEvent.new(
        "payment.received",
        SOURCE,
        {
            "customer_number": customer,
            "invoice_number": "NO-SUCH-3",
            "paid_at": "2026-03-20T12:00:00Z",
            "amount_eur": "1,00 €",
        },
    )
    async with TopicReader(dlq(BILLING_INBOUND)) as dead, Producer() as producer:
        for event in (unknown_payment, unknown_collection, bad_amount):
            await producer.send(BILLING_INBOUND, customer, event)
        for event in events(customer):
            await producer.send(BILLING_INBOUND, customer, event)
        records = await dead_letters(dead, customer, 3)
    assert [header(r, "error.reason") for r in records] == ["unknown_invoice", "unknown_invoice", "invalid_decimal"]
    assert "invoice_number" in (header(records[0], "error.detail") or "")
    async with billing.runtime.pool.acquire() as conn:
        await eventually(lambda: conn.fetchval("SELECT count(*) = 5 FROM items WHERE customer_number = $1", customer))


async def test_erasure_keeps_vouchers_restricted_reports_and_schedules_then_purges_when_due(billing, scan) -> None:
    customer = new_customer_number()
    await ingest(billing, customer)
    erasure = privacy_task(billing.settings.participant_name, "erasure", customer)
    first, again = await run_privacy_task(erasure, times=2)

    assert first == again  # a repeated task is answered idempotently, from the stored ack
    assert first["status"] == "done"
    assert first["erased"] == {"billing": 1}  # the credit check: not accounting material
    assert first["retained"] == [
        {
            "category": "billing",
            "items": 1,
            "legal_basis": "GDPR Art. 17(3)(e) legal claims: open collection case; debt expires in 3 years unless renewed (Act 728/2003)",
            "until": "2029-12-31",
        },
        {
            "category": "billing",
            "items": 3,
            "legal_basis": "Accounting Act 1336/1997 2:10 (accounting vouchers)",
            "until": "2032-12-31",
        },
    ]
    async with billing.runtime.pool.acquire() as conn:
        store = BillingStore(conn, billing.runtime.keys)
        assert await store.active_items(customer) == []  # out of every normal query
        assert {i.restricted_reason for i in await store.all_items(customer)} == {"retention"}
        scheduled = await conn.fetch(
            "SELECT delete_after FROM scheduled_deletions WHERE customer_number = $1", customer
        )
        assert sorted(r["delete_after"] for r in scheduled) == [date(2029, 12, 31)] + [date(2032, 12, 31)] * 3

        billing.clock.set(datetime(2029, 12, 31, 12, tzinfo=UTC))
        assert await purge_due(conn, billing.runtime.keys, billing.clock) == {
            "items_deleted": 0,
            "customers_forgotten": 0,
            "items_held": 0,
        }
        billing.clock.set(datetime(2030, 1, 1, 12, tzinfo=UTC))
        assert await purge_due(conn, billing.runtime.keys, billing.clock) == {
            "items_deleted": 1,
            "customers_forgotten": 0,
            "items_held": 0,
        }
        billing.clock.set(datetime(2033, 1, 1, 12, tzinfo=UTC))
        assert await purge_due(conn, billing.runtime.keys, billing.clock) == {
            "items_deleted": 3,
            "customers_forgotten": 1,
            "items_held": 0,
        }
        assert await conn.fetchval("SELECT count(*) FROM customers WHERE customer_number = $1", customer) == 0
        assert await scan(conn, [customer, LINE_TEXT, "Asiakas901", AGENCY, CREDIT_RESULT, "Luottotieto"]) == []

    # a later erasure of the same subject finds nothing and says so
    [later] = await run_privacy_task(privacy_task(billing.settings.participant_name, "erasure", customer))
    assert later["erased"] == {"billing": 0} and later["retained"] == []


async def test_the_service_runs_the_scheduled_deletions_by_itself(start_billing, scan) -> None:
    """Nobody has to remember `lampo billing purge-due`: the service runs it on its schedule, so
    items kept after an erasure go when their statutory period ends."""
    async with start_billing(purge_interval_s=0.3, purge_first_delay_s=0.3) as billing:
        customer = new_customer_number()
        await ingest(billing, customer)
        [ack] = await run_privacy_task(privacy_task(billing.settings.participant_name, "erasure", customer))
        assert [r["until"] for r in ack["retained"]] == ["2029-12-31", "2032-12-31"]
        async with billing.runtime.pool.acquire() as conn:
            await asyncio.sleep(1.0)  # several scheduled runs: nothing is due yet
            assert await conn.fetchval("SELECT count(*) FROM items WHERE customer_number = $1", customer) == 4

            billing.clock.set(datetime(2033, 1, 1, 12, tzinfo=UTC))
            await eventually(
                lambda: conn.fetchval("SELECT count(*) = 0 FROM customers WHERE customer_number = $1", customer),
                timeout=10,
            )
            assert await conn.fetchval("SELECT count(*) FROM items WHERE customer_number = $1", customer) == 0
            assert await scan(conn, [customer, LINE_TEXT, "Asiakas901", AGENCY]) == []


async def test_erasure_after_the_statutory_periods_deletes_everything_and_leaves_no_personal_data(
    billing, scan
) -> None:
    customer = new_customer_number()
    await ingest(billing, customer)
    billing.clock.set(datetime(2033, 1, 1, 0, 30, tzinfo=UTC))
    [ack] = await run_privacy_task(privacy_task(billing.settings.participant_name, "erasure", customer))
    assert ack["erased"] == {"billing": 5} and ack["retained"] == []
    async with billing.runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM subject_keys") == 0
        assert await scan(conn, [customer, LINE_TEXT, "Asiakas901", AGENCY, CREDIT_RESULT, "Luottotieto"]) == []


async def test_restriction_takes_items_out_of_normal_queries_and_rectification_changes_nothing(billing) -> None:
    customer = new_customer_number()
    await ingest(billing, customer)
    [rectified] = await run_privacy_task(privacy_task(billing.settings.participant_name, "rectification", customer))
    assert rectified["status"] == "done" and rectified["erased"] == {}
    [restricted] = await run_privacy_task(privacy_task(billing.settings.participant_name, "restriction", customer))
    assert restricted["status"] == "done"
    async with billing.runtime.pool.acquire() as conn:
        store = BillingStore(conn, billing.runtime.keys)
        assert await store.active_items(customer) == []
        assert len(await store.all_items(customer)) == 5

    private, public = new_request_keypair()
    [ack] = await run_privacy_task(
        privacy_task(billing.settings.participant_name, "access", customer, result_key=public)
    )
    result = json.loads(unseal(private, ack["result"]))["billing"]
    assert {i["restricted"] for items in result.values() for i in items} == {"restriction"}


async def test_purge_due_command_deletes_kept_items_whose_period_ended(billing) -> None:
    customer = new_customer_number()
    await ingest(billing, customer, year=2015)
    billing.clock.set(datetime(2016, 1, 15, tzinfo=UTC))  # kept until 2021-12-31, long past today
    [ack] = await run_privacy_task(privacy_task(billing.settings.participant_name, "erasure", customer))
    assert [r["until"] for r in ack["retained"]] == ["2018-12-31", "2021-12-31"]

    settings = billing.settings
    env = {
        **os.environ,
        "LAMPO_DATABASE": settings.database or "",
        "LAMPO_MASTER_KEY": settings.master_key.get_secret_value() if settings.master_key else "",
    }
    lampo = Path(sys.executable).with_name("lampo")
    process = await asyncio.create_subprocess_exec(
        str(lampo), "billing", "purge-due", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == "deleted 4 kept items; destroyed 1 customer keys"
    async with billing.runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM items") == 0
        assert await conn.fetchval("SELECT count(*) FROM subject_keys") == 0


# -- every task kind (issue #15), resolve, legal holds (issue #16) ----------------------------

TOKEN = "test-dsar-token"
CALLERS = {"dsar": TOKEN, "staff": "test-staff-token"}


async def task(billing: Any, kind: str, customer: str, **extra: Any) -> dict[str, Any]:
    t = privacy_task(billing.settings.participant_name, kind, customer).model_copy(update=extra)
    [ack] = await run_privacy_task(t)
    return ack


async def access(billing: Any, customer: str) -> dict[str, list[dict[str, Any]]]:
    private, public = new_request_keypair()
    [ack] = await run_privacy_task(
        privacy_task(billing.settings.participant_name, "access", customer, result_key=public)
    )
    result: dict[str, list[dict[str, Any]]] = json.loads(unseal(private, ack["result"]))["billing"]
    return result


async def test_every_kind_is_done_and_a_customer_billing_does_not_know_changes_nothing(billing) -> None:
    stranger = new_customer_number()
    for kind, extra in [
        ("erasure", {}),
        ("purge", {}),
        ("rectification", {}),
        ("restriction", {}),
        ("restriction", {"lift": True}),
        ("objection", {"scope": "processing"}),
        ("objection", {"scope": "direct_marketing"}),
    ]:
        ack = await task(billing, kind, stranger, **extra)
        assert ack["status"] == "done", (kind, ack)
        assert ack["erased"] in ({}, {"billing": 0}) and ack["retained"] == []
        if kind not in ("erasure", "purge"):
            assert ack["effects"] == [
                {"action": "nothing_held", "category": "billing", "items": 0, "legal_basis": None, "at": None}
            ], kind
    async with billing.runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM customers WHERE customer_number = $1", stranger) == 0


async def test_rectification_leaves_issued_invoices_as_they_are_and_says_why(billing) -> None:
    customer = new_customer_number()
    await ingest(billing, customer)
    ack = await task(billing, "rectification", customer)
    assert ack["status"] == "done"
    assert ack["effects"] == [
        {"action": "not_altered", "category": "billing", "items": 2, "legal_basis": VOUCHER_NOT_ALTERED, "at": None}
    ]
    assert "Kirjanpitolaki 1336/1997" in VOUCHER_NOT_ALTERED
    invoices = (await access(billing, customer))["invoices"]
    assert [i["lines"][0]["text"] for i in invoices] == [LINE_TEXT, LINE_TEXT]  # nothing rewritten


async def test_restriction_holds_new_items_too_and_a_lift_keeps_the_statutory_restriction(billing) -> None:
    customer = new_customer_number()
    await ingest(billing, customer)
    restricted = await task(billing, "restriction", customer)
    assert [(e["action"], e["items"]) for e in restricted["effects"]] == [("restricted", 5)]
    assert restricted["effects"][0]["at"] == "2026-11-28T10:00:00Z"

    # An invoice issued while the restriction stands is stored restricted.
    later = CloudEvent.new(
        "invoice.issued",
        "urn:system:billing",
        {
            "customer_number": customer,
            "invoice_number": f"INV-{customer}-3",
            "issued_at": "2026-11-01T08:00:00Z",
            "due_date": "2026-11-21",
            "total_eur": "10.00",
            "lines": [{"text": "Perusmaksu", "amount_eur": "10.00"}],
        },
    )
    async with Producer() as producer:
        await producer.send("billing.inbound.v1", customer, later)
    async with billing.runtime.pool.acquire() as conn:
        await eventually(
            lambda: conn.fetchval("SELECT count(*) = 6 FROM items WHERE customer_number = $1", customer), timeout=30
        )
        assert await BillingStore(conn, billing.runtime.keys).active_items(customer) == []
        # One item is also kept by a statute (as after an erasure): a lift must not release it.
        await conn.execute(
            "UPDATE items SET restricted_reason = 'retention' WHERE item_id ="
            " (SELECT item_id FROM items WHERE customer_number = $1 AND kind = 'invoice' ORDER BY occurred_at LIMIT 1)",
            customer,
        )

    billing.clock.set(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    lifted = await task(billing, "restriction", customer, lift=True)
    assert lifted["status"] == "done"
    assert [(e["action"], e["items"], e["at"]) for e in lifted["effects"]] == [
        ("restriction_lifted", 5, "2026-12-01T09:00:00Z"),
        ("restricted", 1, None),
    ]
    assert "statute" in lifted["effects"][1]["legal_basis"]
    async with billing.runtime.pool.acquire() as conn:
        assert len(await BillingStore(conn, billing.runtime.keys).active_items(customer)) == 5
    result = await access(billing, customer)
    assert sorted(str(i["restricted"]) for items in result.values() for i in items) == ["None"] * 5 + ["retention"]


async def test_objection_to_processing_restricts_the_credit_checks_only(billing) -> None:
    customer = new_customer_number()
    await ingest(billing, customer)
    marketing = await task(billing, "objection", customer, scope="direct_marketing")
    assert [e["action"] for e in marketing["effects"]] == ["nothing_held"]
    ack = await task(billing, "objection", customer, scope="processing")
    [effect] = ack["effects"]
    assert (effect["action"], effect["items"]) == ("processing_restricted", 1)
    assert "legitimate interest" in effect["legal_basis"]
    result = await access(billing, customer)
    assert [i["restricted"] for i in result["credit_checks"]] == ["restriction"]
    assert {i["restricted"] for i in result["invoices"] + result["payments"] + result["collections"]} == {None}


async def test_every_item_of_access_says_its_origin_and_basis_so_portability_leaves_billing_out(billing) -> None:
    customer = new_customer_number()
    await ingest(billing, customer)
    result = await access(billing, customer)
    provenance = {kind: {(i["origin"], i["legal_basis"]) for i in items} for kind, items in result.items()}
    assert provenance == {
        "invoices": {("controller", "legal_obligation")},
        "payments": {("third_party", "legal_obligation")},
        "collections": {("controller", "contract")},
        "credit_checks": {("third_party", "legitimate_interest")},
    }
    # The coordinator's filter (origin "subject" and basis consent/contract) keeps none of them.
    assert not [i for items in result.values() for i in items if i["origin"] == "subject"]


async def test_resolve_answers_a_customer_number_only_billing_knows(start_billing) -> None:
    async with start_billing(api_clients=CALLERS) as billing:
        customer = new_customer_number()
        await ingest(billing, customer)
        transport = httpx.ASGITransport(app=billing.runtime.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://billing") as http:

            async def resolve(body: Any, token: str | None = TOKEN) -> httpx.Response:
                headers = {"authorization": f"Bearer {token}"} if token else {}
                content = body if isinstance(body, bytes) else json.dumps(body).encode()
                return await http.post("/v1/resolve", content=content, headers=headers)

            known = await resolve({"customer_number": customer})
            assert (known.status_code, known.json()) == (200, {"customer_numbers": [customer]})
            unknown = await resolve({"customer_number": new_customer_number()})
            assert (unknown.status_code, unknown.json()) == (404, {"error": "no_match"})
            assert (await resolve({"email": "asiakas901@example.fi"})).status_code == 404  # billing keeps none
            assert (await resolve({"customer_number": customer}, token=None)).status_code == 401
            assert (await resolve({"customer_number": customer}, token="wrong")).status_code == 401
            # another caller of the suite (staff) is known, and still not answered here
            assert (await resolve({"customer_number": customer}, token="test-staff-token")).status_code == 403
            bad = await resolve({"customer_number": "has space"})
            assert (bad.status_code, bad.json()) == (
                422,
                {"error": "invalid_customer_number", "field": "customer_number"},
            )
            assert "has space" not in bad.text
            assert (await resolve({"email": "not-an-address"})).json() == {"error": "invalid_email", "field": "email"}
            assert (await resolve({})).status_code == 422
            assert (await resolve(b"{not json")).json() == {"error": "invalid_json", "field": None}


async def test_resolve_refuses_every_call_when_no_token_is_configured(billing) -> None:
    customer = new_customer_number()
    await ingest(billing, customer)
    transport = httpx.ASGITransport(app=billing.runtime.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://billing") as http:
        answer = await http.post(
            "/v1/resolve", json={"customer_number": customer}, headers={"authorization": "Bearer "}
        )
    assert answer.status_code == 401


async def hold_state(customer: str, holds: list[dict[str, Any]]) -> None:
    """What retention publishes on retention.holds.v1 after each change of a customer's holds."""
    state = {"customer_number": customer, "holds": holds}
    async with Producer() as producer:
        await producer.send(
            "retention.holds.v1", customer, CloudEvent.new("legal_hold.state", "urn:lampo:retention", state)
        )


async def test_a_legal_hold_stops_the_scheduled_deletions_and_its_release_lets_them_run(billing) -> None:
    customer, other = new_customer_number(), new_customer_number()
    for c in (customer, other):
        await ingest(billing, c)
        await task(billing, "erasure", c)
    hold = {
        "hold_id": unique("hold"),
        "categories": ["billing"],
        "case_reference": "R 26/1234",
        "authority": "Keskusrikospoliisi",
        "placed_at": "2026-11-29T10:00:00Z",
    }
    # A hold on another category only does not stop billing's deletions.
    await hold_state(other, [{**hold, "hold_id": unique("hold"), "categories": ["consumption"]}])
    # Records that are not a hold state for their own key are passed over (the internal topic has
    # no dead-letter topic) and the consumer goes on.
    misplaced = CloudEvent.new("legal_hold.state", "urn:lampo:retention", {"customer_number": other, "holds": [hold]})
    async with Producer() as producer:
        await producer.send_many("retention.holds.v1", [(customer, b"{not json"), (customer, misplaced.to_bytes())])
    await hold_state(customer, [hold])
    async with billing.runtime.pool.acquire() as conn:
        await eventually(
            lambda: conn.fetchval(
                "SELECT count(*) = 2 FROM legal_holds WHERE customer_number = ANY($1::text[])", [customer, other]
            ),
            timeout=30,
        )
        assert await conn.fetchval("SELECT holds_billing FROM legal_holds WHERE customer_number = $1", other) is False
        assert billing.runtime.consumers[1].stats.passed_over >= 2
        billing.clock.set(datetime(2033, 1, 1, 12, tzinfo=UTC))  # every statutory period has ended
        counts = await purge_due(conn, billing.runtime.keys, billing.clock)
        assert counts == {"items_deleted": 4, "customers_forgotten": 1, "items_held": 4}
        assert await conn.fetchval("SELECT count(*) FROM items WHERE customer_number = $1", customer) == 4
        assert await conn.fetchval("SELECT count(*) FROM items WHERE customer_number = $1", other) == 0

        await hold_state(customer, [])  # released
        await eventually(
            lambda: conn.fetchval("SELECT count(*) = 0 FROM legal_holds WHERE customer_number = $1", customer),
            timeout=30,
        )
        counts = await purge_due(conn, billing.runtime.keys, billing.clock)
        assert counts == {"items_deleted": 4, "customers_forgotten": 1, "items_held": 0}
        assert await conn.fetchval("SELECT count(*) FROM customers WHERE customer_number = $1", customer) == 0
