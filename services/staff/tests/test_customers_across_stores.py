"""A customer across every store (issue 18): the roles × categories matrix decides which stores
are asked (billing for ``billing``; recordings and the consent ledger for
``customer_relationship``), a category outside the role is neither shown nor fetched, every read,
search and playback is audited under the user's name, and the look-up goes through the
registry's blind indexes without the value reaching a URL or the audit log."""

from __future__ import annotations

import json
from typing import Any

import pytest
from staff_support import AUDIO, INVOICE_LINE, Suite

from lampo.testing import synthetic_identity_code


def detail_of(row: Any) -> Any:
    detail = json.loads(row["detail"])
    return json.loads(detail) if isinstance(detail, str) else detail


def stores_of(body: dict[str, Any], category: str) -> set[str]:
    return {i["store"] for i in body["categories"].get(category, [])}


async def audit_rows(suite: Suite, actor: str, action: str, limit: int = 1) -> list[Any]:
    async with suite.staff.runtime.pool.acquire() as conn:
        return list(
            await conn.fetch(
                "SELECT outcome, customer_number, categories, detail::text AS detail FROM audit_log"
                " WHERE actor = $1 AND action = $2 ORDER BY seq DESC LIMIT $3",
                actor,
                action,
                limit,
            )
        )


async def test_customer_service_sees_recordings_and_consents_and_never_billing(suite: Suite) -> None:
    headers = await suite.as_role("customer_service")
    suite.store_calls["billing"].clear()
    r = await suite.client.get(f"/v1/subjects/{suite.customer}", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert "billing" not in body["categories"] and "billing" not in body["not_connected"]
    assert stores_of(body, "customer_relationship") == {"registry", "recordings", "consent"}
    [recording] = [i for i in body["categories"]["customer_relationship"] if i.get("kind") == "recording"]
    assert recording["recording_id"] == suite.recording_id and recording["media_type"] == "audio/wav"
    consents = [i for i in body["categories"]["customer_relationship"] if i.get("kind") == "consent"]
    assert [(c["purpose"], c["state"]) for c in consents] == [("profiling", "granted")]
    assert suite.store_calls["billing"] == []  # outside the role: not even fetched
    assert body["unavailable"] == [] and body["withheld"] is False


async def test_billing_clerk_sees_the_billing_store_and_no_recording(suite: Suite) -> None:
    headers = await suite.as_role("billing_clerk")
    suite.store_calls["recordings"].clear()
    suite.store_calls["consent"].clear()
    body = (await suite.client.get(f"/v1/subjects/{suite.customer}", headers=headers)).json()
    assert set(body["categories"]) == {"basic", "contact", "billing", "consumption"}
    [invoice] = body["categories"]["billing"]
    assert invoice["store"] == "billing" and invoice["data"]["lines"][0]["text"] == INVOICE_LINE
    assert suite.store_calls["recordings"] == [] and suite.store_calls["consent"] == []
    refused = await suite.client.get(
        f"/v1/subjects/{suite.customer}/recordings/{suite.recording_id}/audio", headers=headers
    )
    assert refused.status_code == 403 and refused.json()["error"]["reason"] == "category_not_permitted"
    [row] = await audit_rows(suite, "billing.clerk.user", "recording_played")
    assert (row["outcome"], row["customer_number"], list(row["categories"])) == (
        "denied", suite.customer, ["customer_relationship"],
    )  # fmt: skip


async def test_the_dpo_sees_every_store_and_each_read_is_audited(suite: Suite) -> None:
    headers = await suite.as_role("data_protection_officer")
    body = (await suite.client.get(f"/v1/subjects/{suite.customer}", headers=headers)).json()
    assert stores_of(body, "billing") == {"billing"}
    assert stores_of(body, "customer_relationship") == {"registry", "recordings", "consent"}
    assert body["not_connected"] == ["other_consented"]
    [row] = await audit_rows(suite, "data.protection.officer.user", "subject_read")
    assert row["outcome"] == "ok" and row["customer_number"] == suite.customer
    assert set(row["categories"]) == set(body["categories"]) | {"other_consented"}


async def test_a_recording_plays_through_the_staff_service_and_is_audited(suite: Suite) -> None:
    headers = await suite.as_role("customer_service")
    path = f"/v1/subjects/{suite.customer}/recordings/{suite.recording_id}/audio"
    r = await suite.client.get(path, headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav" and r.content == AUDIO
    [row] = await audit_rows(suite, "customer.service.user", "recording_played")
    assert (row["outcome"], row["customer_number"]) == ("ok", suite.customer)
    assert detail_of(row) == {"recording_id": suite.recording_id}
    missing = await suite.client.get(f"/v1/subjects/{suite.customer}/recordings/no-such-rec/audio", headers=headers)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("by", "value"),
    [
        ("customer_number", None),
        ("identity_code", synthetic_identity_code(4242)),
        ("email", "Asiakas4242@EXAMPLE.fi"),
        ("name", "asiakas4242  testi4242"),
    ],
)
async def test_look_up_by_each_field_through_the_blind_indexes(suite: Suite, by: str, value: str | None) -> None:
    headers = await suite.as_role("customer_service")
    value = value or suite.customer
    r = await suite.client.post("/v1/search", json={"by": by, "value": value}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"customer_numbers": [suite.customer]}
    [row] = await audit_rows(suite, "customer.service.user", "customer_search")
    assert row["outcome"] == "ok" and detail_of(row) == {"by": by, "found": 1}
    assert value.casefold() not in row["detail"].casefold()  # what was searched for is not logged


async def test_look_up_refusals(suite: Suite) -> None:
    headers = await suite.as_role("customer_service")
    code = synthetic_identity_code(4242)
    r = await suite.client.post("/v1/search", json={"by": "identity_code", "value": code[:-1] + "?"}, headers=headers)
    assert r.status_code == 422 and r.json()["error"]["detail"].startswith("value:")
    assert code[:-1] not in r.text
    r = await suite.client.post("/v1/search", json={"by": "phone", "value": "+358401234567"}, headers=headers)
    assert r.status_code == 422 and r.json()["error"]["detail"].startswith("by")
    admin = await suite.as_role("administrator")  # sees no customer data: finds none either
    r = await suite.client.post("/v1/search", json={"by": "name", "value": "Testi4242 Asiakas4242"}, headers=admin)
    assert r.status_code == 403
