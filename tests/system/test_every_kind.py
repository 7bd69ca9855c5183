"""Every kind of request the privacy statement promises (§11-§13, GDPR Art. 16-21), through the
whole running suite: every service its own process, real broker and databases. Each kind is
submitted as the portal would, over Kafka (dsar.requests.v1) and over the coordinator's HTTP API
with the portal's own credential, and checked as the subject, staff and the marketing system see
the result: the completed request per participant, a later access package, the register's staff
read, the direct-marketing audience and consent.events.v1."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from lampo.contracts.catalog import CONSENT_EVENTS, CONSENT_INBOUND, DSAR_EVENTS, REGISTRY_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.db.pool import server_url_of
from lampo.synthetic import Customer, approve, new_customer, outcome, seed, submit, submitted
from lampo.testing import PG_URL, Producer, TopicReader, eventually

STORES = ("registry", "billing", "recordings", "consent")
VIA = ["kafka", "http"]


async def fetchval(suite: Any, service: str, sql: str, *args: object, keys: bool = False) -> Any:
    """One value from a service's database (``keys``: from its keys database)."""
    database = suite[service].env["LAMPO_KEYS_DATABASE" if keys else "LAMPO_DATABASE"]
    conn = await asyncpg.connect(server_url_of(PG_URL, database))
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def ask(suite: Any, via: str, kind: str, customer: Customer, events: TopicReader, **extra: Any) -> dict[str, Any]:
    """Submit a request of ``kind`` for ``customer`` as the portal, over Kafka or HTTP; the data
    of its dsar.completed."""
    event = submitted(kind, customer.number, **extra)
    if via == "kafka":
        request_id = await submit(event)
    else:
        body = json.loads(event.to_bytes())["data"]
        async with httpx.AsyncClient(base_url=suite["dsar"].url, headers=suite.as_caller("portal")) as http:
            answer = await http.post("/v1/requests", json=body, timeout=30)
        assert answer.status_code == 201, answer.text
        request_id = answer.json()["request_id"]
    completed: dict[str, Any] = (await outcome(events, request_id, "dsar.completed", timeout=120))["data"]
    return completed


def effects(completed: dict[str, Any], participant: str) -> dict[str, dict[str, Any]]:
    return {e["action"]: e for e in completed["results"][participant]["effects"]}


def assert_done_by_every_store(completed: dict[str, Any], *, expected: tuple[str, ...] = STORES) -> None:
    assert completed["status"] == "completed", completed
    assert set(expected) <= set(completed["results"]), completed["results"]
    assert all(r["status"] == "done" for r in completed["results"].values()), completed["results"]


async def staff_read(suite: Any, customer: Customer) -> dict[str, Any]:
    """The register's answer to the staff service (what customer service is shown)."""
    async with httpx.AsyncClient(base_url=suite["registry"].url, headers=suite.as_caller("staff")) as http:
        answer = await http.get(f"/v1/subjects/{customer.number}", timeout=10)
    assert answer.status_code == 200, answer.text
    read: dict[str, Any] = answer.json()
    return read


async def in_audience(suite: Any, customer: Customer) -> bool:
    """Whether the direct-marketing audience the marketing system reads names the customer."""
    async with httpx.AsyncClient(base_url=suite["registry"].url, headers=suite.as_caller("marketing")) as http:
        # the page that starts just before the customer number (a prefix sorts before it)
        answer = await http.get(
            "/v1/audiences/direct_marketing", params={"after": customer.number[:-1], "limit": 5000}, timeout=10
        )
    assert answer.status_code == 200, answer.text
    return customer.number in answer.json()["customer_numbers"]


async def profiled(suite: Any, customer: Customer) -> bool:
    return bool(
        await fetchval(
            suite, "registry", "SELECT count(*) = 1 FROM profiles WHERE customer_number = $1", customer.number
        )
    )


async def with_profile_and_marketing(suite: Any) -> Customer:
    """A customer in every store (consent to profiling included), with consumption readings, so
    the register computes a profile, and a consent to direct marketing, so the audience names
    them."""
    customer = new_customer()
    await seed(suite.urls, customer)
    async with Producer() as systems:
        for month in (1, 2, 3):
            reading = {
                "customer_number": customer.number, "metering_point": f"MUL-{customer.n:06d}",
                "period_start": f"2026-0{month}-01", "period_end": f"2026-0{month}-28",
                "energy_mwh": f"{1 + month}.5", "annual_forecast_mwh": "18.0",
            }  # fmt: skip
            await systems.send(
                REGISTRY_INBOUND,
                customer.number,
                CloudEvent.new("consumption.reported", "urn:system:metering", reading),
            )
        given = {
            "customer_number": customer.number,
            "purpose": "direct_marketing",
            "channel": "portal",
            "at": datetime.now(UTC),
        }
        await systems.send(
            CONSENT_INBOUND, customer.number, CloudEvent.new("consent.given", "urn:system:portal", given)
        )
    await eventually(lambda: profiled(suite, customer), timeout=60)
    await eventually(lambda: in_audience(suite, customer), timeout=60)
    return customer


async def package_of(suite: Any, completed: dict[str, Any]) -> dict[str, bytes]:
    """The access package, fetched at its address with the portal's credential."""
    uri = completed["package"]["uri"]
    assert uri.startswith(suite["dsar"].url), uri
    async with httpx.AsyncClient(headers=suite.as_caller("portal")) as http:
        answer = await http.get(uri, timeout=60)
    assert answer.status_code == 200, answer.text
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    return {name: archive.read(name) for name in archive.namelist()}


@pytest.mark.parametrize("via", VIA)
async def test_rectification_reaches_every_copy_and_a_later_access_package_holds_the_new_value(
    suite, require, via
) -> None:
    require("dsar", *STORES)
    customer = new_customer()
    await seed(suite.urls, customer)
    old = f"asiakas{customer.n}@example.fi"
    new = f"korjattu.{customer.n}@example.fi"
    async with TopicReader(DSAR_EVENTS) as events:
        rectified = await ask(suite, via, "rectification", customer, events, corrections={"contact": {"email": new}})
        access = await ask(suite, via, "access", customer, events)

    assert_done_by_every_store(rectified, expected=("registry", "billing", "recordings"))
    assert effects(rectified, "registry")["rectified"]["category"] == "contact"
    # issued invoices are accounting vouchers: not altered, and the result says under which law
    not_altered = effects(rectified, "billing")["not_altered"]
    assert not_altered["items"] == 1 and "Accounting Act" in not_altered["legal_basis"]
    assert "not_altered" in effects(rectified, "recordings")  # archived correspondence is not rewritten
    assert access["status"] == "completed"
    contact = (await package_of(suite, access))["data/contact.json"].decode()
    assert new in contact and old not in contact


@pytest.mark.parametrize("via", VIA)
async def test_restriction_stops_profiling_and_exports_and_its_lift_told_first_re_enables_them(
    suite, require, via
) -> None:
    require("dsar", *STORES)
    customer = await with_profile_and_marketing(suite)
    async with TopicReader(DSAR_EVENTS) as events:
        restricted = await ask(suite, via, "restriction", customer, events)

    assert_done_by_every_store(restricted)
    assert {"restricted", "profile_deleted"} <= set(effects(restricted, "registry"))
    assert not await profiled(suite, customer)  # profiling stopped: the profile is gone
    assert not await in_audience(suite, customer)  # exports skip the subject
    read = await staff_read(suite, customer)
    assert read["restricted"] is True and read["withheld"] is True  # stored, not used
    assert all(items == [] for items in read["categories"].values())

    async with TopicReader(DSAR_EVENTS) as events:
        lifted = await ask(suite, via, "restriction", customer, events, lift=True)
        mine = [r for r in events.records if r.key == lifted["request_id"].encode()]
    types = [json.loads(r.value)["type"] for r in mine]
    # the subject is told before the stores lift it (Art. 18(3)), and the result says when
    assert types.index("dsar.restriction_lift_notice") < types.index("dsar.completed")
    assert lifted["status"] == "completed" and lifted["lift_notice_at"] is not None
    assert "restriction_lifted" in effects(lifted, "registry")
    await eventually(lambda: in_audience(suite, customer), timeout=30)
    await eventually(lambda: profiled(suite, customer), timeout=30)  # consent stands: profiled again
    assert (await staff_read(suite, customer))["restricted"] is False


async def consent_changes(reader: TopicReader, customer: Customer, purpose: str) -> list[dict[str, Any]]:
    found = await reader.wait_for(
        lambda r: r.key == customer.number.encode() and json.loads(r.value)["data"]["purpose"] == purpose
        and json.loads(r.value)["data"]["state"] == "objected"
    )  # fmt: skip
    return [json.loads(r.value)["data"] for r in found]


@pytest.mark.parametrize("via", VIA)
async def test_an_objection_acts_on_its_scope(suite, require, via) -> None:
    require("dsar", *STORES)
    customers = {
        scope: await with_profile_and_marketing(suite)
        for scope in ("profiling", "direct_marketing", "processing", "automated_decisions")
    }
    answers = {}
    async with TopicReader(DSAR_EVENTS) as events, TopicReader(CONSENT_EVENTS) as consent_events:
        for scope, customer in customers.items():
            answers[scope] = await ask(suite, via, "objection", customer, events, scope=scope)
        objected_profiling = await consent_changes(consent_events, customers["profiling"], "profiling")
        objected_marketing = await consent_changes(consent_events, customers["direct_marketing"], "direct_marketing")

    for scope, completed in answers.items():
        # recorded in the consent ledger like objection.filed, acted on by the register
        assert_done_by_every_store(completed, expected=("registry", "consent"))
        assert "objection_recorded" in effects(completed, "consent"), scope
    # profiling: it stops and the profile is deleted; announced to every system that profiles
    assert "profile_deleted" in effects(answers["profiling"], "registry")
    assert not await profiled(suite, customers["profiling"])
    assert objected_profiling
    # direct marketing: suppressed where the register exports marketing audiences; announced
    assert "marketing_suppressed" in effects(answers["direct_marketing"], "registry")
    assert not await in_audience(suite, customers["direct_marketing"])
    assert objected_marketing
    assert await in_audience(suite, customers["profiling"])  # each scope does its own thing
    # processing on legitimate interest: restricted until the objection is decided, and staff see it
    assert "processing_restricted" in effects(answers["processing"], "registry")
    read = await staff_read(suite, customers["processing"])
    assert read["restricted"] is True
    assert [(o["scope"], o["status"]) for o in read["objections"]] == [("processing", "pending")]
    # automated decisions: recorded; the register says none are made
    assert (
        "no decisions based solely on automated processing"
        in effects(answers["automated_decisions"], "registry")["nothing_held"]["legal_basis"]
    )
    assert await profiled(suite, customers["automated_decisions"])


async def test_an_access_package_dies_with_its_subjects_erasure(suite, require) -> None:
    require("dsar", *STORES)
    customer = new_customer()
    await seed(suite.urls, customer)
    async with TopicReader(DSAR_EVENTS) as events:
        access = await ask(suite, "kafka", "access", customer, events)
        assert (await package_of(suite, access))["manifest.json"]  # fetchable while the subject is kept
        erasure = await submit(submitted("erasure", customer.number))
        await outcome(events, erasure, "dsar.awaiting_approval")
        await approve(erasure)  # signed by staff, as the staff service does for the managing director
        erased = (await outcome(events, erasure, "dsar.completed", timeout=120))["data"]

    # the coordinator erased its own copy and says so beside the stores
    assert "packages_destroyed" in effects(erased, "dsar")
    # and it says what no erasure reaches, and until when: the records in the inbound and
    # dead-letter topics, which expire by themselves (lampo topics list)
    completed_at = datetime.fromisoformat(erased["completed_at"])
    copies = {
        c["where"].split(" (")[0]: datetime.fromisoformat(c["until"]) - completed_at
        for c in erased["unreachable_copies"]
    }
    assert set(copies) == {"inbound topics", "dead-letter topics"}
    assert abs(copies["inbound topics"] - timedelta(hours=24)) < timedelta(minutes=1)
    assert abs(copies["dead-letter topics"] - timedelta(hours=72)) < timedelta(minutes=1)
    async with httpx.AsyncClient(headers=suite.as_caller("portal")) as http:
        gone = await http.get(access["package"]["uri"], timeout=30)
    assert gone.status_code == 410
    chunks = await fetchval(
        suite, "dsar", "SELECT count(*) FROM package_chunks WHERE request_id = $1", access["request_id"]
    )
    key = await fetchval(
        suite,
        "dsar",
        "SELECT count(*) FROM subject_keys WHERE subject_id = $1",
        f"package:{access['request_id']}",
        keys=True,
    )
    assert (chunks, key) == (0, 0)
