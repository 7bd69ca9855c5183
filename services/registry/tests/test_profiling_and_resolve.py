"""Profiling only with consent (consent.events.v1), and identity resolution for the coordinator."""

from __future__ import annotations

import json
from typing import Any

import httpx

from lampo.contracts.catalog import CONSENT_EVENTS, REGISTRY_EVENTS, REGISTRY_INBOUND
from lampo.testing import Producer, TopicReader, customer_upserted, eventually, synthetic_identity_code

from .helpers import as_caller, event, new_customer_number, now, ours, subject_in


def consent(customer: str, state: str, purpose: str = "profiling") -> Any:
    data = {"customer_number": customer, "purpose": purpose, "state": state, "effective_at": now().isoformat()}
    return event("consent.changed", data, source="urn:lampo:consent")


def reading(customer: str, month: int, mwh: str, year: int = 2025) -> Any:
    start = f"{year}-{month:02d}-01"
    end = f"{year}-{month:02d}-28"
    data = {
        "customer_number": customer,
        "metering_point": "MUL-000051",
        "period_start": start,
        "period_end": end,
        "energy_mwh": mwh,
    }
    return event("consumption.reported", data, source="urn:system:metering")


async def profile_of(registry: Any, customer: str) -> Any:
    async with registry.runtime.pool.acquire() as conn:
        return await conn.fetchrow(
            "SELECT band, trend, annual_mwh, reports FROM profiles WHERE customer_number = $1", customer
        )


async def test_a_profile_exists_only_while_profiling_consent_stands(registry) -> None:
    customer = new_customer_number()
    async with TopicReader(REGISTRY_EVENTS) as notices, Producer() as producer:
        await producer.send(REGISTRY_INBOUND, customer, customer_upserted(customer, 51))
        for month in range(1, 13):  # 2024: 1 MWh a month; 2025: 1.5 MWh a month
            await producer.send(REGISTRY_INBOUND, customer, reading(customer, month, "1.0", 2024))
            await producer.send(REGISTRY_INBOUND, customer, reading(customer, month, "1.5", 2025))
        await ours(registry, notices, customer, count=25)
    assert await profile_of(registry, customer) is None  # no consent, no profile

    async with Producer() as producer:
        await producer.send(CONSENT_EVENTS, customer, consent(customer, "granted"))
    profile = await eventually(lambda: profile_of(registry, customer))
    assert (profile["band"], profile["trend"], profile["annual_mwh"], profile["reports"]) == (
        "10_20_mwh",
        "rising",
        18,
        24,
    )

    async with Producer() as producer:
        await producer.send(CONSENT_EVENTS, customer, consent(customer, "objected", purpose="processing"))
    await eventually(lambda: _absent(registry, customer))  # an objection deletes it at once

    async with TopicReader(REGISTRY_EVENTS) as notices, Producer() as producer:
        await producer.send(REGISTRY_INBOUND, customer, reading(customer, 1, "9.0", 2026))
        await ours(registry, notices, customer)
    assert await profile_of(registry, customer) is None  # and it is not computed again


async def test_withdrawal_deletes_the_profile(registry) -> None:
    customer = new_customer_number()
    async with TopicReader(REGISTRY_EVENTS) as notices, Producer() as producer:
        await producer.send(REGISTRY_INBOUND, customer, customer_upserted(customer, 51))
        await producer.send(REGISTRY_INBOUND, customer, reading(customer, 1, "0.4"))
        await producer.send(CONSENT_EVENTS, customer, consent(customer, "granted"))
        await ours(registry, notices, customer, count=2)
    profile = await eventually(lambda: profile_of(registry, customer))
    assert profile["trend"] == "unknown"
    async with Producer() as producer:
        await producer.send(CONSENT_EVENTS, customer, consent(customer, "withdrawn"))
    await eventually(lambda: _absent(registry, customer))


async def _absent(registry: Any, customer: str) -> bool:
    return await profile_of(registry, customer) is None


async def test_resolve_finds_the_subject_by_any_identifier_and_answers_clearly(registry) -> None:
    customer, other = new_customer_number(), new_customer_number()
    async with TopicReader(REGISTRY_EVENTS) as notices, Producer() as producer:
        await producer.send(REGISTRY_INBOUND, customer, customer_upserted(customer, 52))
        await producer.send(REGISTRY_INBOUND, other, customer_upserted(other, 53))
        await ours(registry, notices, customer)
        await ours(registry, notices, other)
    subject_id = await subject_in(registry, customer)
    transport = httpx.ASGITransport(app=registry.runtime.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry", headers=as_caller("dsar")) as http:
        # Only the coordinator is answered: nobody else learns whether someone is a customer.
        for headers in ({"authorization": ""}, as_caller("staff")):
            refused = await http.post("/v1/resolve", json={"customer_number": customer}, headers=headers)
            assert refused.status_code in (401, 403) and subject_id not in refused.text

        async def resolve(body: Any) -> httpx.Response:
            return await http.post(
                "/v1/resolve",
                content=body if isinstance(body, bytes) else None,
                json=None if isinstance(body, bytes) else body,
            )

        expected = {"subject_id": subject_id, "customer_numbers": [customer], "kind": "person"}
        for body in (
            {"customer_number": customer},
            {"personal_identity_code": synthetic_identity_code(52)},
            {"email": "ASIAKAS52@example.fi"},
            {"customer_number": customer, "email": "asiakas52@example.fi"},
        ):
            answer = await resolve(body)
            assert (answer.status_code, answer.json()) == (200, expected), body

        assert (await resolve({"customer_number": "nobody-here"})).json() == {"error": "no_match"}
        assert (await resolve({"customer_number": "nobody-here"})).status_code == 404
        # identifiers of two different people never resolve to either
        mixed = await resolve({"customer_number": customer, "personal_identity_code": synthetic_identity_code(53)})
        assert (mixed.status_code, mixed.json()) == (404, {"error": "no_match"})
        bad = await resolve({"personal_identity_code": "131052-308U"})
        assert (bad.status_code, bad.json()) == (
            400,
            {"error": "invalid_personal_identity_code", "field": "personal_identity_code"},
        )
        assert "131052" not in bad.text
        assert (await resolve({"email": "not-an-address"})).json()["field"] == "email"
        assert (await resolve({})).status_code == 400
        assert (await resolve(b"{not json")).json() == {"error": "invalid_json", "field": None}
        assert (await http.get("/v1/resolve")).status_code == 405


async def test_a_batch_of_readings_recomputes_the_profile_once_per_customer_not_per_reading(registry) -> None:
    """The profile reads every reading of the customer; recomputed after each one, a customer's
    hourly series made ingest quadratic. Within a batch the customer's last reading recomputes
    it, and the profile committed is the same as after each one."""
    customer = new_customer_number()
    async with TopicReader(REGISTRY_EVENTS) as notices, Producer() as producer:
        await producer.send(REGISTRY_INBOUND, customer, customer_upserted(customer, 51))
        await producer.send(CONSENT_EVENTS, customer, consent(customer, "granted"))
        await ours(registry, notices, customer)
        series = [reading(customer, m, "1.0", 2024) for m in range(1, 13)] + [
            reading(customer, m, "1.5", 2025) for m in range(1, 13)
        ]
        await producer.send_many(REGISTRY_INBOUND, [(customer, e.to_bytes()) for e in series])
        changed = await ours(registry, notices, customer, count=1 + len(series))
    profile = await eventually(lambda: profile_of(registry, customer))
    assert (profile["band"], profile["trend"], profile["annual_mwh"], profile["reports"]) == (
        "10_20_mwh",
        "rising",
        18,
        24,
    )
    readings = [json.loads(r.value)["data"]["categories"] for r in changed[1:]]
    assert all("consumption" in c for c in readings)  # every reading announced
    recomputed = sum("services" in c for c in readings)
    assert 1 <= recomputed < len(series)  # once per batch that held the customer's readings
