"""``lampo registry accuracy``: the §12 report, run as the operator runs it, on the real database."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta
from pathlib import Path

import httpx

from lampo.contracts.catalog import REGISTRY_EVENTS, REGISTRY_INBOUND
from lampo.registry.domain import Provenance, SectionUpdate
from lampo.registry.store import RegistryStore
from lampo.testing import Producer, TopicReader, customer_upserted

from .helpers import as_caller, event, new_customer_number, now, ours, subject_in

LAMPO = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "lampo"


async def test_accuracy_report_lists_counts_and_customer_numbers_only(registry) -> None:
    stale, first, second, no_contact, broken = (new_customer_number() for _ in range(5))
    person_only = {
        "customer_number": no_contact,
        "kind": "person",
        "source": {"system": "crm", "origin": "subject"},
        "legal_basis": "contract",
        "person": {"first_names": "Testi", "last_name": "Yhteystiedoton"},
    }
    async with TopicReader(REGISTRY_EVENTS) as notices, Producer() as producer:
        await producer.send(REGISTRY_INBOUND, stale, customer_upserted(stale, 61, time=now() - timedelta(days=913)))
        await producer.send(REGISTRY_INBOUND, first, customer_upserted(first, 62))
        await producer.send(REGISTRY_INBOUND, second, customer_upserted(second, 62))  # same identity code
        await producer.send(REGISTRY_INBOUND, no_contact, event("customer.upserted", person_only))
        await producer.send(REGISTRY_INBOUND, broken, customer_upserted(broken, 63))
        for customer in (stale, first, second, no_contact, broken):
            await ours(registry, notices, customer)
    # data that met the rules when it came but no longer does (here: written past the checks)
    subject_id = await subject_in(registry, broken)
    async with registry.runtime.pool.acquire() as conn:
        store = RegistryStore(conn, registry.runtime.keys)
        bad_contact = {
            "street": "Testikatu 64",
            "postal_code": "X",
            "city": "Muurame",
            "country": "FI",
            "phone": None,
            "email": None,
        }
        await store.write_section(
            broken,
            subject_id,
            SectionUpdate("contact", "contact", bad_contact),
            await store.cipher(subject_id),
            Provenance("crm", "subject", "contract", now(), "test"),
        )

    env = {
        **os.environ,
        "LAMPO_DATABASE": registry.settings.database or "",
        "LAMPO_MASTER_KEY": registry.settings.master_key.get_secret_value() if registry.settings.master_key else "",
    }
    process = await asyncio.create_subprocess_exec(
        str(LAMPO),
        "registry",
        "accuracy",
        "--unconfirmed-years",
        "2",
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["invalid_or_missing"] == {
        "count": 2,
        "customers": {no_contact: ["missing_contact"], broken: ["invalid_contact"]},
    }
    assert report["duplicate_identity_codes"] == {"count": 1, "groups": [sorted([first, second])]}
    assert report["unconfirmed_contacts"] == {"years": 2, "count": 1, "customers": [stale]}
    assert "example.fi" not in out.decode() and "Testikatu" not in out.decode()  # customer numbers and counts only

    text = await asyncio.create_subprocess_exec(
        str(LAMPO), "registry", "accuracy", env=env, stdout=asyncio.subprocess.PIPE
    )
    lines = (await text.communicate())[0].decode()
    assert "contact data not confirmed for 3 years: 0" in lines

    # The same report for the staff console (GET /v1/accuracy, the staff caller only).
    transport = httpx.ASGITransport(app=registry.runtime.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as http:
        answer = await http.get("/v1/accuracy", params={"unconfirmed_years": 2}, headers=as_caller("staff"))
        assert answer.status_code == 200, answer.text
        # (other writers of the shared topic may have added customers since: compare ours)
        mine_only = {stale, first, second, no_contact, broken}

        def mine(r: dict) -> tuple[object, ...]:  # type: ignore[type-arg]
            return (
                {c: p for c, p in r["invalid_or_missing"]["customers"].items() if c in mine_only},
                [g for g in r["duplicate_identity_codes"]["groups"] if mine_only & set(g)],
                [c for c in r["unconfirmed_contacts"]["customers"] if c in mine_only],
                r["unconfirmed_contacts"]["years"],
            )

        assert mine(answer.json()) == mine(report)
        assert (await http.get("/v1/accuracy", headers=as_caller("dsar"))).status_code == 403
        assert (await http.get("/v1/accuracy")).status_code == 401
        bad = await http.get("/v1/accuracy", params={"unconfirmed_years": "0"}, headers=as_caller("staff"))
        assert bad.status_code == 400 and bad.json() == {"error": "invalid_years", "field": "unconfirmed_years"}
