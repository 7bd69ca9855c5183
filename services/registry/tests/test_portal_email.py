"""``GET /v1/subjects/{customer_number}/email``: the address the privacy centre sends its one-time
codes and notices to, for the ``portal`` caller only. Real broker and database: the customer
arrives as ``customer.upserted`` on registry.inbound.v1."""

from __future__ import annotations

import httpx

from lampo.contracts.catalog import REGISTRY_INBOUND
from lampo.testing import Producer, customer_upserted

from .conftest import Registry
from .helpers import as_caller, new_customer_number, organisation_upserted, run_task, subject_in


async def email_of(registry: Registry, customer: str, caller: str = "portal") -> httpx.Response:
    transport = httpx.ASGITransport(app=registry.runtime.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as http:
        return await http.get(f"/v1/subjects/{customer}/email", headers=as_caller(caller))


async def upsert(registry: Registry, customer: str, event) -> str:  # type: ignore[no-untyped-def]
    async with Producer() as producer:
        await producer.send(REGISTRY_INBOUND, customer, event)
    return await subject_in(registry, customer)


async def test_the_portal_reads_the_address_the_register_holds(registry: Registry) -> None:
    customer = new_customer_number()
    await upsert(registry, customer, customer_upserted(customer, 961, email="minna.portaali@example.fi"))

    answer = await email_of(registry, customer)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"email": "minna.portaali@example.fi"}


async def test_unknown_customer_and_no_address_are_told_apart(registry: Registry) -> None:
    unknown = await email_of(registry, new_customer_number())
    assert (unknown.status_code, unknown.json()) == (404, {"error": "unknown_customer"})

    organisation = new_customer_number()  # its contact section has a street, no e-mail
    await upsert(registry, organisation, organisation_upserted(organisation))
    none = await email_of(registry, organisation)
    assert (none.status_code, none.json()) == (404, {"error": "no_email"})

    bad = await email_of(registry, "no spaces allowed")
    assert (bad.status_code, bad.json()) == (400, {"error": "invalid_customer_number", "field": "customer_number"})


async def test_only_the_portal_may_read_the_address(registry: Registry) -> None:
    customer = new_customer_number()
    await upsert(registry, customer, customer_upserted(customer, 962))
    assert (await email_of(registry, customer, caller="staff")).status_code == 403
    assert (await email_of(registry, customer, caller="dsar")).status_code == 403
    transport = httpx.ASGITransport(app=registry.runtime.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as http:
        assert (await http.get(f"/v1/subjects/{customer}/email")).status_code == 401
    # and the portal reads nothing else of the register
    assert (await registry_read(registry, customer)).status_code == 403


async def registry_read(registry: Registry, customer: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=registry.runtime.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as http:
        return await http.get(f"/v1/subjects/{customer}", headers=as_caller("portal"))


async def test_a_restricted_subject_can_still_be_written_to(registry: Registry) -> None:
    customer = new_customer_number()
    subject_id = await upsert(registry, customer, customer_upserted(customer, 963, email="rajoitettu@example.fi"))
    ack = await run_task(registry, subject_id, [customer], "restriction")
    assert ack.status == "done", ack.error

    answer = await email_of(registry, customer)
    assert (answer.status_code, answer.json()) == (200, {"email": "rajoitettu@example.fi"})


async def test_after_erasure_no_address_is_left_to_give(registry: Registry) -> None:
    customer = new_customer_number()
    subject_id = await upsert(registry, customer, customer_upserted(customer, 964))
    ack = await run_task(registry, subject_id, [customer], "erasure", categories=["contact"])
    assert ack.status == "done", ack.error

    answer = await email_of(registry, customer)
    assert (answer.status_code, answer.json()) == (404, {"error": "no_email"})
