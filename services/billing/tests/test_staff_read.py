"""``GET /v1/customers/{customer_number}``: the staff service's read of a customer's billing items
(issue 18), answered to the ``staff`` caller only; restricted data withheld unless the purpose is
legal claims; the items a statute keeps after an erasure out of a normal read. Real broker and
database."""

from __future__ import annotations

from typing import Any

import httpx

from lampo.testing import privacy_task, run_privacy_task

from .test_billing import AGENCY, LINE_TEXT, ingest, new_customer_number

CALLERS = {"dsar": "test-dsar-token", "staff": "test-staff-token"}


async def read(billing: Any, customer: str, token: str | None = "test-staff-token", **params: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=billing.runtime.app)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://billing") as http:
        return await http.get(f"/v1/customers/{customer}", params=params, headers=headers)


async def test_staff_reads_the_customers_billing_items_decrypted(start_billing) -> None:
    async with start_billing(api_clients=CALLERS) as billing:
        customer = new_customer_number()
        await ingest(billing, customer)
        r = await read(billing, customer)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["customer_number"], body["store"], body["restricted"], body["withheld"]) == (
            customer, "billing", False, False,
        )  # fmt: skip
        items = body["categories"]["billing"]
        assert [i["kind"] for i in items] == ["credit_check", "invoice", "payment", "invoice", "collection"]
        invoice = items[1]
        assert invoice["invoice_number"] == f"INV-{customer}-1"
        assert invoice["data"]["lines"][0]["text"] == LINE_TEXT  # decrypted for the staff member
        assert items[4]["data"]["agency"] == AGENCY
        assert all({"origin", "legal_basis"} <= set(i) for i in items)

        unknown = await read(billing, new_customer_number())
        assert (unknown.status_code, unknown.json()) == (404, {"error": "no_match"})
        assert (await read(billing, customer, token=None)).status_code == 401
        assert (await read(billing, customer, token="test-dsar-token")).status_code == 403
        bad = await read(billing, customer, purpose="curiosity")
        assert (bad.status_code, bad.json()) == (400, {"error": "invalid_purpose", "field": "purpose"})


async def test_restricted_items_are_withheld_unless_for_legal_claims(start_billing) -> None:
    async with start_billing(api_clients=CALLERS) as billing:
        restricted, erased = new_customer_number(), new_customer_number()
        await ingest(billing, restricted)
        await ingest(billing, erased)
        [ack] = await run_privacy_task(privacy_task(billing.settings.participant_name, "restriction", restricted))
        assert ack["status"] == "done"
        body = (await read(billing, restricted)).json()
        assert (body["restricted"], body["withheld"], body["categories"]) == (True, True, {"billing": []})
        claims = (await read(billing, restricted, purpose="legal_claims")).json()
        assert claims["withheld"] is False and len(claims["categories"]["billing"]) == 5
        assert {i["restricted"] for i in claims["categories"]["billing"]} == {"restriction"}

        # After an erasure, the vouchers a statute keeps are out of a normal read.
        [ack] = await run_privacy_task(privacy_task(billing.settings.participant_name, "erasure", erased))
        assert ack["status"] == "done"
        normal = (await read(billing, erased)).json()
        assert normal["withheld"] is False and normal["categories"]["billing"] == []
        kept = (await read(billing, erased, purpose="legal_claims")).json()["categories"]["billing"]
        assert len(kept) == 4 and {i["restricted"] for i in kept} == {"retention"}
        assert all(i["kept_until"] for i in kept)
