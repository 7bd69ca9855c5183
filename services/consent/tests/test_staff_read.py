"""The staff service's read of the consent ledger (issue 18): a customer's current consent per
purpose and the ledger behind it, to the ``staff`` caller only; withheld while the customer is
restricted, unless for legal claims. Real broker and database."""

from __future__ import annotations

from typing import Any

import httpx

from lampo.contracts.catalog import CONSENT_INBOUND
from lampo.testing import Producer, eventually

from .test_participant import CALLERS, ask, task


async def read(consent: Any, customer: str, token: str | None = "test-staff-token", **params: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=consent.runtime.app)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://consent") as http:
        return await http.get(f"/v1/customers/{customer}", params=params, headers=headers)


async def test_staff_reads_the_current_consents_and_the_ledger(start_consent, ev, customer) -> None:
    async with start_consent(api_clients=CALLERS) as consent:
        async with Producer() as producer:
            await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "profiling", 0))
            await producer.send(CONSENT_INBOUND, customer, ev.given(customer, "direct_marketing", 1))
            await producer.send(CONSENT_INBOUND, customer, ev.withdrawn(customer, "profiling", 2))
        await eventually(lambda: consent.inbound.stats.processed >= 3)
        r = await read(consent, customer)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["store"], body["restricted"], body["withheld"]) == ("consent", False, False)
        items = body["categories"]["customer_relationship"]
        current = {i["purpose"]: i["state"] for i in items if i["kind"] == "consent"}
        assert current == {"direct_marketing": "granted", "profiling": "withdrawn"}
        ledger = [(i["event_kind"], i["purpose"]) for i in items if i["kind"] == "ledger_entry"]
        assert ledger == [
            ("consent.given", "profiling"),
            ("consent.given", "direct_marketing"),
            ("consent.withdrawn", "profiling"),
        ]
        assert (await read(consent, "nobody-here")).json() == {"error": "no_match"}
        assert (await read(consent, customer, token=None)).status_code == 401
        assert (await read(consent, customer, token="test-dsar-token")).status_code == 403

        restricted = await ask(consent, task("restriction", customer))
        assert restricted["status"] == "done"
        withheld = (await read(consent, customer)).json()
        assert (withheld["restricted"], withheld["withheld"]) == (True, True)
        assert withheld["categories"] == {"customer_relationship": []}
        claims = (await read(consent, customer, purpose="legal_claims")).json()
        assert claims["withheld"] is False and len(claims["categories"]["customer_relationship"]) == 5
