"""Data subject requests through the whole running suite (every service its own process, real
broker and databases), checked the way the portal, staff and operators see them."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import sys
import uuid
import zipfile
from pathlib import Path

import httpx
from suite import ServiceProcess, free_port, own_role

from lampo.contracts.catalog import CONSENT_EVENTS, DSAR_EVENTS, PRIVACY_ACKS, PRIVACY_TASKS, REGISTRY_EVENTS
from lampo.messaging.topics import TOPICS
from lampo.synthetic import (
    Customer,
    approve,
    new_customer,
    outcome,
    seed,
    submit,
    submitted,
    until_year,
    years_from_now,
)
from lampo.testing import TopicReader, eventually, fast_forward_group, find_in_database, find_in_records

PARTICIPANTS = ("registry", "billing", "recordings", "consent")
INTERNAL = (REGISTRY_EVENTS, CONSENT_EVENTS, DSAR_EVENTS, PRIVACY_TASKS, PRIVACY_ACKS, "retention.holds.v1")


async def erase(customer: Customer, events: TopicReader, *, traceparent: str | None = None) -> dict:
    request_id = await submit(submitted("erasure", customer.number), traceparent=traceparent)
    await outcome(events, request_id, "dsar.awaiting_approval")
    await approve(request_id)
    return await outcome(events, request_id, "dsar.completed", timeout=120)


async def test_erasure_fans_out_to_every_store_and_keeps_billing_under_the_accounting_act(suite, require) -> None:
    require("dsar", *PARTICIPANTS)
    customer = new_customer()
    async with TopicReader(*INTERNAL) as internal, TopicReader(DSAR_EVENTS) as events:
        await seed(suite.urls, customer)
        trace = uuid.uuid4().hex
        completed = await erase(customer, events, traceparent=f"00-{trace}-{uuid.uuid4().hex[:16]}-01")
        leftovers = await internal.quiet(2.0)

    data = completed["data"]
    assert data["status"] == "completed_with_retention"
    assert set(data["results"]) == set(PARTICIPANTS)
    assert all(r["status"] == "done" for r in data["results"].values())
    assert data["results"]["registry"]["erased"].get("basic", 0) >= 1
    assert data["results"]["recordings"]["erased"] == {"customer_relationship": 1}
    [kept] = data["results"]["billing"]["retained"]
    assert kept["category"] == "billing" and kept["items"] == 1
    assert "Accounting Act" in kept["legal_basis"] and until_year(kept["until"]) == years_from_now(6)
    assert data["trace_id"] == trace

    # one trace: spans of the dsar and of every participant carry the request's trace id
    expected = {"lampo-dsar", "lampo-registry", "lampo-billing", "lampo-recordings", "lampo-consent"}

    def traced() -> bool:
        return expected <= {s.service for s in suite.otlp.spans if s.trace_id == trace}

    def tasks_traced() -> bool:  # each participant's task span, which may come in a later export
        task_spans = [s for s in suite.otlp.spans if s.trace_id == trace and s.name == f"process {PRIVACY_TASKS}"]
        return {s.service for s in task_spans} >= {f"lampo-{p}" for p in PARTICIPANTS}

    await eventually(traced, timeout=20)
    await eventually(tasks_traced, timeout=20)

    # operators see it on the coordinator's /metrics
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"{suite['dsar'].url}/metrics", timeout=5)).text
    assert re.search(
        r'^lampo_dsar_requests\{[^}]*kind="erasure"[^}]*state="completed_with_retention"[^}]*\} [1-9]', metrics, re.M
    )
    assert re.search(r'^lampo_dsar_completion_mean_seconds\{[^}]*kind="erasure"', metrics, re.M)
    assert "lampo_dsar_overdue" in metrics and customer.number not in metrics

    # nothing personal left: no database of the suite, no internal topic
    for database in suite.databases:
        assert await find_in_database(database, customer.personal_strings) == [], database
    assert find_in_records(leftovers, customer.personal_strings) == []


async def test_access_package_holds_what_was_stored_audio_included(suite, require, tmp_path: Path) -> None:
    require("dsar", *PARTICIPANTS)
    customer = new_customer()
    await seed(suite.urls, customer)
    async with TopicReader(DSAR_EVENTS) as events:
        request_id = await submit(submitted("access", customer.number))
        completed = await outcome(events, request_id, "dsar.completed", timeout=120)
    assert completed["data"]["status"] == "completed"
    package = completed["data"]["package"]

    out = tmp_path / "package.zip"
    dsar = suite["dsar"]
    cli = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "lampo"), "dsar", "package", request_id, "--out", str(out),
        env=dsar.env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(cli.communicate(), timeout=60)
    assert cli.returncode == 0, stderr.decode()
    blob = out.read_bytes()
    assert hashlib.sha256(blob).hexdigest() == package["sha256"]
    archive = zipfile.ZipFile(io.BytesIO(blob))
    names = archive.namelist()
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["request"]["request_id"] == request_id and manifest["format"] == "access"
    assert {"registry", "billing", "recordings"} <= set(manifest["participants"])
    basic = archive.read("data/basic.json").decode()
    assert customer.identity_code in basic and f"Asiakas{customer.n}" in basic
    assert "billing" in " ".join(names) and customer.invoice_number in archive.read("data/billing.json").decode()
    audio_files = [n for n in names if n.startswith("recordings/")]
    assert [archive.read(n) for n in audio_files] == [customer.audio]


async def test_unverified_and_unknown_subjects_are_rejected(suite, require) -> None:
    require("dsar", "registry")
    async with TopicReader(DSAR_EVENTS) as events:
        unverified = await submit(submitted("access", "100234", verified=False))
        unknown = await submit(submitted("access", f"nobody-{uuid.uuid4().hex[:6]}"))
        first = await outcome(events, unverified, "dsar.rejected", "dsar.accepted")
        second = await outcome(events, unknown, "dsar.rejected", "dsar.accepted")
    assert (first["type"], first["data"]["reason"]) == ("dsar.rejected", "unverified")
    assert (second["type"], second["data"]["reason"]) == ("dsar.rejected", "no_match")


async def test_a_stopped_participant_delays_an_erasure_until_it_is_back(suite, require) -> None:
    require("dsar", *PARTICIPANTS)
    customer = new_customer()
    await seed(suite.urls, customer)
    recordings = suite["recordings"]
    await recordings.stop()
    try:
        async with TopicReader(DSAR_EVENTS) as events:
            request_id = await submit(submitted("erasure", customer.number))
            await outcome(events, request_id, "dsar.awaiting_approval")
            await approve(request_id)
            await outcome(events, request_id, "dsar.accepted")
            early = [
                r
                for r in await events.quiet(5.0)
                if json.loads(r.value)["type"] == "dsar.completed"
                and json.loads(r.value)["data"]["request_id"] == request_id
            ]
            assert early == []  # waits for the stopped participant
            await recordings.start()
            completed = await outcome(events, request_id, "dsar.completed", timeout=120)
    finally:
        if recordings.process is None or recordings.process.returncode is not None:
            await recordings.start()
    assert completed["data"]["status"] == "completed_with_retention"
    assert completed["data"]["results"]["recordings"]["status"] == "done"


async def test_a_participant_that_never_answers_fails_the_request_naming_it(suite, require, tmp_path: Path) -> None:
    """A coordinator configured with one more participant ("ghost") that never answers: after
    its bounded retries the request ends failed, naming it; the registry's part is done."""
    require("dsar", "registry")
    customer = new_customer()
    await seed(suite.urls, customer)
    env = dict(suite["dsar"].env)
    env.update(
        {
            "LAMPO_DATABASE": f"sys_dsar_ghost_{uuid.uuid4().hex[:8]}",
            "LAMPO_CONSUMER_GROUP": f"sys-dsar-ghost-{uuid.uuid4().hex[:8]}",
            "LAMPO_HTTP_PORT": str(free_port()),
            "LAMPO_SOURCE": "urn:lampo:dsar-ghost",
            "LAMPO_PARTICIPANTS": '["registry", "ghost"]',
            "LAMPO_AUTO_APPROVE": '["erasure"]',
            "LAMPO_TASK_TIMEOUT_S": "1",
            "LAMPO_TASK_MAX_ATTEMPTS": "2",
            "LAMPO_CHECK_INTERVAL_S": "0.5",
            "OTEL_SERVICE_NAME": "lampo-dsar-ghost",
        }
    )
    env.update(await own_role("dsar", env["LAMPO_DATABASE"]))  # its database, its role
    await fast_forward_group(env["LAMPO_CONSUMER_GROUP"], [t.name for t in TOPICS])
    ghost_dsar = ServiceProcess("dsar", env, tmp_path / "dsar-ghost.log")
    suite.databases.append(env["LAMPO_DATABASE"])
    await ghost_dsar.start()
    try:
        async with TopicReader(DSAR_EVENTS) as events:
            request_id = await submit(submitted("erasure", customer.number))
            [record] = await events.wait_for(
                lambda r: (
                    json.loads(r.value)["source"] == "urn:lampo:dsar-ghost"
                    and json.loads(r.value)["type"] == "dsar.completed"
                    and json.loads(r.value)["data"]["request_id"] == request_id
                ),
                timeout=90,
            )
    finally:
        await ghost_dsar.stop()
    data = json.loads(record.value)["data"]
    assert data["status"] == "failed"
    assert data["results"]["ghost"]["status"] == "failed" and data["results"]["ghost"]["error"]
    assert data["results"]["registry"]["status"] == "done"
