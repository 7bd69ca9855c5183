"""The privacy centre's consent API on the real broker and database: preferences per purpose,
grant and withdraw recorded exactly as consent.given / consent.withdrawn with channel ``portal``
are, in force the moment the answer comes, announced on consent.events.v1, and the receipts
downloadable."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from lampo.consent.cli import verdict
from lampo.contracts.catalog import CONSENT_EVENTS, CONSENT_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.testing import Producer, TopicReader, eventually

from .conftest import Consent, Events, running_consent

TOKENS = {name: secrets.token_urlsafe(16) for name in ("portal", "dsar")}


@pytest.fixture
async def consent() -> AsyncIterator[Consent]:
    clients = {name: SecretStr(token) for name, token in TOKENS.items()}
    async with running_consent(api_clients=clients) as service:
        yield service


async def call(consent: Consent, method: str, path: str, caller: str = "portal") -> httpx.Response:
    transport = httpx.ASGITransport(app=consent.runtime.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://consent") as http:
        return await http.request(method, path, headers={"authorization": f"Bearer {TOKENS[caller]}"})


async def preferences(consent: Consent, customer: str) -> dict[str, dict[str, Any]]:
    answer = await call(consent, "GET", f"/v1/customers/{customer}/consents")
    assert answer.status_code == 200, answer.text
    return {p["purpose"]: p for p in answer.json()["purposes"]}


async def ledger(consent: Consent, customer: str) -> list[asyncpg.Record]:
    async with consent.runtime.pool.acquire() as conn:
        return await conn.fetch(
            "SELECT kind, purpose, channel, source, outcome, state_after, note, consent_text_version"
            " FROM ledger WHERE customer_number = $1 ORDER BY entry_id",
            customer,
        )


def announced(consent: Consent, customer: str):  # type: ignore[no-untyped-def]
    source = consent.settings.event_source
    return lambda r: r.key == customer.encode() and CloudEvent.from_bytes(r.value).source == source


async def test_preferences_list_every_purpose_with_nothing_recorded_yet(consent: Consent, customer: str) -> None:
    answer = await call(consent, "GET", f"/v1/customers/{customer}/consents")
    assert answer.status_code == 200
    body = answer.json()
    assert body["customer_number"] == customer and body["restricted_since"] is None
    names = [p["purpose"] for p in body["purposes"]]
    assert names == sorted(names) and {"profiling", "direct_marketing"} <= set(names)
    assert all(p["state"] is None and p["receipt_id"] is None for p in body["purposes"])
    assert all(p["description"] and p["consent_text_version"] for p in body["purposes"])
    declared = await call(consent, "GET", "/v1/purposes")
    assert declared.status_code == 200
    assert [p["purpose"] for p in declared.json()["purposes"]] == names


async def test_a_withdrawal_holds_the_moment_it_is_answered_and_is_announced(consent: Consent, customer: str) -> None:
    async with TopicReader(CONSENT_EVENTS) as out:
        granted = await call(consent, "POST", f"/v1/customers/{customer}/consents/profiling/grant")
        assert granted.status_code == 200, granted.text
        assert (granted.json()["outcome"], granted.json()["state"]) == ("changed", "granted")
        assert (await verdict(consent.settings.database_url, customer, "profiling")).allowed

        withdrawn = await call(consent, "POST", f"/v1/customers/{customer}/consents/profiling/withdraw")
        assert withdrawn.status_code == 200, withdrawn.text
        # committed before the answer: no purpose may use the customer from this moment
        answer = await verdict(consent.settings.database_url, customer, "profiling")
        assert not answer.allowed and "withdrawn" in answer.reason

        records = await out.wait_for(announced(consent, customer), count=2)
    states = [CloudEvent.from_bytes(r.value).data for r in records]
    assert [(s["purpose"], s["state"]) for s in states] == [("profiling", "granted"), ("profiling", "withdrawn")]
    body = withdrawn.json()
    assert body["state"] == "withdrawn" and body["receipt_id"] and body["effective_at"]
    assert states[1]["effective_at"][:19] == body["effective_at"][:19]

    shown = (await preferences(consent, customer))["profiling"]
    assert (shown["state"], shown["channel"], shown["receipt_id"]) == ("withdrawn", "portal", body["receipt_id"])


async def test_recorded_exactly_as_the_inbound_events_with_channel_portal(consent: Consent, ev: Events) -> None:
    over_http, over_kafka = (str(secrets.randbelow(10**9)) for _ in range(2))
    assert (
        await call(consent, "POST", f"/v1/customers/{over_http}/consents/direct_marketing/grant")
    ).status_code == 200
    assert (
        await call(consent, "POST", f"/v1/customers/{over_http}/consents/direct_marketing/withdraw")
    ).status_code == 200
    async with Producer() as producer:
        await producer.send(CONSENT_INBOUND, over_kafka, ev.given(over_kafka, "direct_marketing", 0))
        await producer.send(CONSENT_INBOUND, over_kafka, ev.withdrawn(over_kafka, "direct_marketing", 1))
    await eventually(lambda: consent.inbound.stats.processed >= 2)

    def comparable(rows: list[asyncpg.Record]) -> list[tuple[Any, ...]]:
        return [(r["kind"], r["purpose"], r["channel"], r["outcome"], r["state_after"], r["note"],
                 r["consent_text_version"]) for r in rows]  # fmt: skip

    http_rows, kafka_rows = await ledger(consent, over_http), await ledger(consent, over_kafka)
    assert comparable(http_rows) == comparable(kafka_rows)
    assert [r["channel"] for r in http_rows] == ["portal", "portal"]
    assert {r["source"] for r in http_rows} == {"urn:lampo:portal"}


async def test_the_receipt_downloads_as_json_under_a_stable_name(consent: Consent, customer: str) -> None:
    granted = (await call(consent, "POST", f"/v1/customers/{customer}/consents/profiling/grant")).json()
    receipt_id = granted["receipt_id"]

    listed = await call(consent, "GET", f"/v1/customers/{customer}/receipts")
    assert listed.status_code == 200
    [entry] = listed.json()["receipts"]
    assert (entry["receipt_id"], entry["purpose"], entry["state"], entry["channel"]) == (
        receipt_id, "profiling", "granted", "portal",
    )  # fmt: skip

    download = await call(consent, "GET", f"/v1/customers/{customer}/receipts/{receipt_id}")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/json"
    assert download.headers["content-disposition"] == f'attachment; filename="consent-receipt-{receipt_id}.json"'
    receipt = download.json()
    assert receipt["version"] == "KI-CR-v1.1.0" and receipt["consentReceiptID"] == receipt_id
    assert receipt["piiPrincipalId"] == customer and receipt["collectionMethod"] == "portal"
    [purpose] = receipt["services"][0]["purposes"]
    assert (purpose["purpose"], purpose["state"]) == ("profiling", "granted")

    # another customer cannot fetch it, and a malformed id is simply not found
    other = await call(consent, "GET", f"/v1/customers/{customer}0/receipts/{receipt_id}")
    assert (other.status_code, other.json()) == (404, {"error": "no_receipt"})
    assert (await call(consent, "GET", f"/v1/customers/{customer}/receipts/not-a-uuid")).status_code == 404


async def test_a_withdrawal_does_not_lift_an_objection(consent: Consent, ev: Events, customer: str) -> None:
    async with Producer() as producer:
        await producer.send(CONSENT_INBOUND, customer, ev.objection(customer, "profiling"))
    await eventually(lambda: consent.inbound.stats.processed >= 1)
    answer = (await call(consent, "POST", f"/v1/customers/{customer}/consents/profiling/withdraw")).json()
    assert (answer["outcome"], answer["state"], answer["receipt_id"]) == ("unchanged", "objected", None)
    assert "objection stands" in answer["note"]
    shown = (await preferences(consent, customer))["profiling"]
    assert (shown["state"], shown["scope"], shown["channel"]) == ("objected", "profiling", None)


async def test_bad_input_and_other_callers_get_specific_answers(consent: Consent, customer: str) -> None:
    unknown = await call(consent, "POST", f"/v1/customers/{customer}/consents/astrology/grant")
    assert (unknown.status_code, unknown.json()) == (404, {"error": "unknown_purpose", "field": "purpose"})
    assert await ledger(consent, customer) == []
    bad = await call(consent, "GET", "/v1/customers/%20x/consents")
    assert (bad.status_code, bad.json()) == (400, {"error": "invalid_customer_number", "field": "customer_number"})
    assert (
        await call(consent, "POST", f"/v1/customers/{customer}/consents/profiling/withdraw", "dsar")
    ).status_code == 403
    assert await ledger(consent, customer) == []
