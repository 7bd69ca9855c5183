"""The registry as a participant of every kind and scope, and the results honoured: restriction
(placed, honoured by profiling, staff reads and the direct-marketing audience, lifted),
objection per scope, nothing held, provenance of access items, rectification's effects and its
failures. Real broker and database, tasks over privacy.tasks.v1 as the coordinator sends them."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from lampo.contracts.catalog import CONSENT_EVENTS, PRIVACY_TASKS, REGISTRY_EVENTS, REGISTRY_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyAck
from lampo.crypto import new_master_key, new_request_keypair, unseal
from lampo.messaging.topics import dlq
from lampo.registry.app import build
from lampo.registry.privacy import decide_objection
from lampo.registry.settings import RegistrySettings
from lampo.testing import (
    Producer,
    TopicReader,
    customer_upserted,
    drop_database,
    eventually,
    header,
    running,
    signing_settings,
    unique,
)

from .conftest import Registry, fast_forward
from .helpers import event, new_customer_number, now, ours, run_task, subject_in
from .test_privacy import populate

TOKEN = "registry-rights-test-token"
LAMPO = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "lampo"


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    """A registry whose read API answers this test (as the staff service)."""
    settings = RegistrySettings(
        database=unique("test_registry"),
        consumer_group=unique("test-registry"),
        master_key=new_master_key(),
        api_clients={"staff": SecretStr(TOKEN)},
        **signing_settings("registry"),  # obeys tasks signed as the coordinator, signs its acks
    )
    await fast_forward(settings.consumer_group or "")
    spans = InMemorySpanExporter()
    runtime = build(settings, span_processors=[SimpleSpanProcessor(spans)])
    async with running(runtime.app):
        yield Registry(runtime, spans, settings)
    await drop_database(settings.database or "")


async def get(registry: Registry, path: str, **params: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=registry.runtime.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as http:
        return await http.get(path, params=params, headers={"authorization": f"Bearer {TOKEN}"})


async def staff_read(registry: Registry, customer: str, **params: Any) -> dict[str, Any]:
    response = await get(registry, f"/v1/subjects/{customer}", **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def audience(registry: Registry, limit: int = 1000) -> list[str]:
    """The whole direct-marketing audience, page by page."""
    numbers: list[str] = []
    after = ""
    while True:
        response = await get(registry, "/v1/audiences/direct_marketing", after=after, limit=limit)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["audience"] == "direct_marketing" and len(page["customer_numbers"]) <= limit
        numbers += page["customer_numbers"]
        if page["next"] is None:
            return numbers
        after = page["next"]


async def lampo(registry: Registry, *args: str) -> tuple[int, str]:
    """``lampo registry <args>`` against this registry's database: (exit code, output)."""
    settings = registry.settings
    env = {
        **os.environ,
        "LAMPO_DATABASE": settings.database or "",
        "LAMPO_MASTER_KEY": settings.master_key.get_secret_value() if settings.master_key else "",
    }
    process = await asyncio.create_subprocess_exec(
        str(LAMPO), "registry", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()


async def consent(registry: Registry, customer: str, purpose: str, state: str) -> None:
    """consent.changed as the consent service announces it, and wait until the register holds it."""
    data = {"customer_number": customer, "purpose": purpose, "state": state, "effective_at": now().isoformat()}
    async with Producer() as producer:
        await producer.send(CONSENT_EVENTS, customer, event("consent.changed", data, source="urn:lampo:consent"))

    async def held() -> bool:
        async with registry.runtime.pool.acquire() as conn:
            return bool(
                await conn.fetchval(
                    "SELECT state = $3 FROM profiling_consent WHERE customer_number = $1 AND purpose = $2",
                    customer,
                    purpose,
                    state,
                )
            )

    await eventually(held, timeout=60)


async def profiles(registry: Registry, customer: str) -> int:
    async with registry.runtime.pool.acquire() as conn:
        count: int = await conn.fetchval("SELECT count(*) FROM profiles WHERE customer_number = $1", customer)
        return count


async def report_consumption(registry: Registry, customer: str, n: int, month: int) -> None:
    """A further monthly reading, stored (the profile, if any may be computed, commits with it)."""
    data = {
        "customer_number": customer,
        "metering_point": f"MUL-{n:06d}",
        "period_start": f"2025-{month:02d}-01",
        "period_end": f"2025-{month:02d}-28",
        "energy_mwh": "3.5",
    }
    async with Producer() as producer:
        await producer.send(REGISTRY_INBOUND, customer, event("consumption.reported", data))

    async def stored() -> bool:
        async with registry.runtime.pool.acquire() as conn:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FROM consumption WHERE customer_number = $1 AND period_start = $2::text::date",
                    customer,
                    data["period_start"],
                )
            )

    await eventually(stored, timeout=60)


def effects(ack: PrivacyAck) -> dict[str, Any]:
    assert ack.status == "done", ack.error
    return {e.action: e for e in ack.effects}


# --- restriction ------------------------------------------------------------------------------


async def test_restriction_stops_profiling_reads_and_the_audience_and_a_lift_re_enables_them(registry) -> None:
    person, _, subject_id = await populate(registry, 51)
    await consent(registry, person, "direct_marketing", "granted")
    assert person in await audience(registry)
    before = await staff_read(registry, person)
    assert before["restricted"] is False and before["restriction"] is None and before["categories"]["contact"]

    ack = await run_task(registry, subject_id, [person], "restriction")
    done = effects(ack)
    assert done["restricted"].at is not None
    assert done["profile_deleted"].category == "services" and done["profile_deleted"].items == 1
    assert await profiles(registry, person) == 0
    assert person not in await audience(registry)
    read = await staff_read(registry, person)
    assert read["restricted"] is True and read["withheld"] is True
    assert [r["reason"] for r in read["restriction"]["reasons"]] == ["request"]
    assert all(items == [] for items in read["categories"].values())  # stored, not used
    claims = await staff_read(registry, person, purpose="legal_claims")  # Art. 18(2)
    assert claims["restricted"] is True and claims["withheld"] is False and claims["categories"]["contact"]
    assert (await get(registry, f"/v1/subjects/{person}", purpose="curiosity")).json() == {
        "error": "invalid_purpose",
        "field": "purpose",
    }
    # Still stored: a new reading is kept, but no profile is computed from it.
    await report_consumption(registry, person, 51, month=2)
    assert await profiles(registry, person) == 0

    lift = await run_task(registry, subject_id, [person], "restriction", lift=True)
    assert [e.action for e in lift.effects] == ["restriction_lifted"] and lift.effects[0].at is not None
    assert await profiles(registry, person) == 1  # consent to profiling stands: computed again
    assert person in await audience(registry)
    after = await staff_read(registry, person)
    assert after["restricted"] is False and after["withheld"] is False and after["categories"]["contact"]
    again = await run_task(registry, subject_id, [person], "restriction", lift=True)
    assert [e.action for e in again.effects] == ["not_restricted"]


# --- objection, per scope -------------------------------------------------------------------------


async def test_objection_to_profiling_deletes_the_profile_and_profiling_stays_stopped(registry) -> None:
    person, _, subject_id = await populate(registry, 52)
    ack = await run_task(registry, subject_id, [person], "objection", scope="profiling")
    done = effects(ack)
    assert "objection_recorded" in done and done["profile_deleted"].items == 1
    assert await profiles(registry, person) == 0
    await report_consumption(registry, person, 52, month=2)
    assert await profiles(registry, person) == 0  # not computed again
    read = await staff_read(registry, person)
    assert [(o["scope"], o["status"]) for o in read["objections"]] == [("profiling", "honoured")]
    assert read["restricted"] is False  # only profiling stops


async def test_objection_to_direct_marketing_suppresses_the_customer_from_the_audience(registry) -> None:
    person, organisation, subject_id = await populate(registry, 53)
    for customer in (person, organisation):
        await consent(registry, customer, "direct_marketing", "granted")
    assert sorted(await audience(registry, limit=1)) == sorted([person, organisation])  # a page each

    ack = await run_task(registry, subject_id, [person], "objection", scope="direct_marketing")
    assert effects(ack)["marketing_suppressed"].at is not None
    assert await audience(registry) == [organisation]
    assert await profiles(registry, person) == 1  # profiling is not what was objected to
    code, out = await lampo(registry, "audience", "direct-marketing", "--page", "1")
    assert code == 0 and out.split() == [organisation]


async def test_audience_refuses_a_bad_page_size(registry) -> None:
    response = await get(registry, "/v1/audiences/direct_marketing", limit=0)
    assert response.status_code == 400 and response.json() == {"error": "invalid_limit", "field": "limit"}
    transport = httpx.ASGITransport(app=registry.runtime.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as http:
        assert (await http.get("/v1/audiences/direct_marketing")).status_code == 401


async def test_objection_to_processing_restricts_until_decided_and_the_decision_is_recorded(registry) -> None:
    person, _, subject_id = await populate(registry, 54)
    await consent(registry, person, "direct_marketing", "granted")
    ack = await run_task(registry, subject_id, [person], "objection", scope="processing")
    done = effects(ack)
    assert "legitimate interests" in (done["processing_restricted"].legal_basis or "")
    assert done["profile_deleted"].items == 1
    read = await staff_read(registry, person)
    assert read["restricted"] is True and [r["reason"] for r in read["restriction"]["reasons"]] == ["objection_pending"]
    assert [(o["scope"], o["status"]) for o in read["objections"]] == [("processing", "pending")]
    assert person not in await audience(registry)
    assert await profiles(registry, person) == 0

    clock, keys = registry.runtime.clock, registry.runtime.keys
    code, out = await lampo(registry, "objection-decide", person, "--rejected")
    assert code == 0 and out.strip() == f"objection to processing of customer {person}: rejected"
    code, out = await lampo(registry, "objection-decide", person, "--upheld")
    assert code == 1 and "no pending objection" in out
    async with registry.runtime.pool.acquire() as conn:
        assert await decide_objection(conn, keys, clock, "no-such-customer", upheld=True) == "no_customer"
    read = await staff_read(registry, person)
    assert read["restricted"] is False
    [objection] = read["objections"]
    assert objection["status"] == "rejected" and objection["decided_at"] is not None
    assert await profiles(registry, person) == 1  # compelling grounds: processing resumes

    await run_task(registry, subject_id, [person], "objection", scope="processing")
    async with registry.runtime.pool.acquire() as conn:
        assert await decide_objection(conn, keys, clock, person, upheld=True) == "upheld"
    read = await staff_read(registry, person)
    assert read["restricted"] is True and [r["reason"] for r in read["restriction"]["reasons"]] == ["objection_upheld"]
    # The subject's own restriction lift does not end what the objection decided.
    lift = await run_task(registry, subject_id, [person], "restriction", lift=True)
    assert [e.action for e in lift.effects] == ["restriction_kept"]
    assert await profiles(registry, person) == 0


async def test_objection_to_automated_decisions_is_recorded_and_says_none_are_made(registry) -> None:
    person, _, subject_id = await populate(registry, 55)
    ack = await run_task(registry, subject_id, [person], "objection", scope="automated_decisions")
    done = effects(ack)
    assert "objection_recorded" in done
    assert "no decisions based solely on automated processing" in (done["nothing_held"].legal_basis or "")
    read = await staff_read(registry, person)
    assert [(o["scope"], o["status"]) for o in read["objections"]] == [("automated_decisions", "recorded")]
    assert read["restricted"] is False and await profiles(registry, person) == 1  # nothing else changes


# --- nothing held -----------------------------------------------------------------------------------


async def test_every_kind_answers_done_with_nothing_held_for_a_subject_the_register_does_not_know(registry) -> None:
    stranger = [str(uuid.uuid4()), [new_customer_number()]]
    _, public_key = new_request_keypair()
    asks: list[tuple[str, dict[str, Any]]] = [
        ("access", {"result_key": public_key}),
        ("erasure", {}),
        ("purge", {}),
        ("rectification", {"corrections": {"contact": {"email": "uusi@example.fi"}}}),
        ("restriction", {}),
        ("restriction", {"lift": True}),
        *[("objection", {"scope": s}) for s in ("processing", "direct_marketing", "profiling", "automated_decisions")],
    ]
    acks = await asyncio.gather(*(run_task(registry, *stranger, kind, **extra) for kind, extra in asks))
    for (kind, extra), ack in zip(asks, acks, strict=True):
        assert ack.status == "done", (kind, extra, ack.error)
        assert [e.action for e in ack.effects] == ["nothing_held"], (kind, extra)
        assert ack.erased == {}


async def test_erasure_of_categories_the_register_does_not_hold_answers_nothing_held(registry) -> None:
    person = new_customer_number()
    async with TopicReader(REGISTRY_EVENTS) as notices, Producer() as producer:
        await producer.send(REGISTRY_INBOUND, person, customer_upserted(person, 56))
        await ours(registry, notices, person)
    subject_id = await subject_in(registry, person)
    ack = await run_task(registry, subject_id, [person], "erasure", categories=["billing"])
    assert list(effects(ack)) == ["nothing_held"] and ack.erased == {}
    assert (await staff_read(registry, person))["categories"]["contact"]  # nothing of it went


# --- access: provenance of every item ---------------------------------------------------------------


async def test_access_items_carry_origin_and_legal_basis_and_the_profile_is_derived(registry) -> None:
    person, _, subject_id = await populate(registry, 57)
    private_key, public_key = new_request_keypair()
    ack = await run_task(registry, subject_id, [person], "access", result_key=public_key)
    assert ack.status == "done" and ack.effects == []
    result = json.loads(unseal(private_key, ack.result or ""))
    for category, items in result.items():
        for item in items:
            assert item["origin"] and item["legal_basis"], category
    [profile] = result["services"]
    assert profile["kind"] == "profile" and profile["origin"] == "derived" and profile["legal_basis"] == "consent"
    provided = [i for i in result["contact"] + result["basic"] if i["origin"] == "subject"]
    assert provided  # what the subject gave stays portable
    staff = await staff_read(registry, person, categories="services")
    assert staff["categories"]["services"][0]["origin"] == "derived"


# --- rectification ------------------------------------------------------------------------------------


async def sections(registry: Registry, subject_id: str, customer: str) -> dict[str, Any]:
    async with registry.runtime.pool.acquire() as conn:
        cipher = await registry.runtime.keys.cipher(conn, subject_id)
        rows = await conn.fetch(
            "SELECT section, payload FROM sections WHERE customer_number = $1 AND payload IS NOT NULL", customer
        )
    return {r["section"]: json.loads(cipher.decrypt(r["section"], bytes(r["payload"])) or "null") for r in rows}


async def test_rectification_of_every_section_reports_what_was_rectified_per_category(registry) -> None:
    person, organisation, subject_id = await populate(registry, 58)
    organisation_id = await subject_in(registry, organisation)
    async with TopicReader(REGISTRY_EVENTS) as notices:
        ack = await run_task(
            registry,
            subject_id,
            [person],
            "rectification",
            corrections={
                "person": {"last_name": "Oikaistu"},
                "account": {"username": "oikaistu58"},
                "contact": {"email": "oikaistu58@example.fi"},
                "contact_person_for": {"position": "toimitusjohtaja"},
            },
        )
        [notice] = await ours(registry, notices, person, type="subject.changed")
        rectified = {e.category: e.items for e in ack.effects if e.action == "rectified"}
        assert ack.status == "done" and rectified == {"basic": 2, "contact": 1, "contact_person": 1}
        assert sorted(json.loads(notice.value)["data"]["categories"]) == ["basic", "contact", "contact_person"]
        org = await run_task(
            registry,
            organisation_id,
            [organisation],
            "rectification",
            corrections={"organisation": {"name": "Uusi Oy"}},
        )
        assert [(e.action, e.category, e.items) for e in org.effects] == [("rectified", "basic", 1)]
        await ours(registry, notices, organisation, type="subject.changed")
    held = await sections(registry, subject_id, person)
    assert held["person"]["last_name"] == "Oikaistu" and held["account"] == {"username": "oikaistu58"}
    assert held["contact"]["email"] == "oikaistu58@example.fi"
    assert held["contact_person_for"]["position"] == "toimitusjohtaja"
    assert (await sections(registry, organisation_id, organisation))["organisation"]["name"] == "Uusi Oy"

    wrong = await run_task(
        registry, organisation_id, [organisation], "rectification", corrections={"person": {"last_name": "X"}}
    )
    assert (
        wrong.status == "failed" and wrong.error == "corrections.person: a subject of kind organisation has no person"
    )


async def test_rectification_with_an_invalid_email_is_refused_naming_the_field_and_changes_nothing(registry) -> None:
    person, _, subject_id = await populate(registry, 59)
    task = {
        "request_id": str(uuid.uuid4()),
        "participant": "registry",
        "kind": "rectification",
        "subject": {"subject_id": subject_id, "customer_numbers": [person]},
        "categories": [],
        "attempt": 1,
        "deadline": (now() + timedelta(days=30)).isoformat(),
        "corrections": {"person": {"last_name": "Puoliksi"}, "contact": {"email": "ei-osoite59"}},
    }
    task["task_id"] = f"{task['request_id']}:registry"
    # As a task that skipped the coordinator's intake check would come: the contract refuses it.
    body = json.loads(CloudEvent.new("privacy.task", "urn:lampo:dsar", {}).to_bytes())
    body["data"] = task
    async with TopicReader(dlq(PRIVACY_TASKS)) as dead, Producer() as producer:
        await producer.send(PRIVACY_TASKS, task["request_id"], json.dumps(body).encode())
        [record, *_] = await dead.wait_for(lambda r: r.key == task["request_id"].encode())
    detail = header(record, "error.detail") or ""
    assert "corrections.contact.email" in detail and "ei-osoite59" not in detail
    held = await sections(registry, subject_id, person)
    assert held["person"]["last_name"] == "Asiakas59" and held["contact"]["email"] == "asiakas59@example.fi"


async def test_rectification_leaving_a_section_invalid_fails_naming_the_field_and_changes_nothing(registry) -> None:
    person = new_customer_number()
    async with TopicReader(REGISTRY_EVENTS) as notices, Producer() as producer:
        await producer.send(REGISTRY_INBOUND, person, customer_upserted(person, 60))
        await ours(registry, notices, person)
    subject_id = await subject_in(registry, person)
    # Not a contact person: an employer alone names no organisation.
    ack = await run_task(
        registry,
        subject_id,
        [person],
        "rectification",
        corrections={"contact": {"email": "uusi60@example.fi"}, "contact_person_for": {"employer": "Salainen Oy"}},
    )
    assert ack.status == "failed" and ack.effects == []
    assert (ack.error or "").startswith("corrections.contact_person_for.customer_number:")
    assert "Salainen" not in (ack.error or "")
    held = await sections(registry, subject_id, person)
    assert held["contact"]["email"] == "asiakas60@example.fi" and "contact_person_for" not in held
