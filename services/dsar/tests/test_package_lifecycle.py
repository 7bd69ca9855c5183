"""A package's life on the real broker and database: fetched at its address by the request's
channel (or staff) with its own credential, every fetch audited; destroyed (key and chunks) when
it expires and at once when its subject is erased, after which its address answers 410;
transferred to another controller (Art. 20(2)); CSV cells neutralised, JSON exact; the manifest
names the controller."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import zipfile
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from dsar_support import (
    ParticipantProcess,
    data_of,
    dsar_service,
    event,
    for_request,
    free_port,
    participants,
    submitted,
)
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from lampo.contracts.catalog import DSAR_EVENTS, DSAR_REQUESTS
from lampo.contracts.privacy import PrivacyTask
from lampo.dsar.packages import TransferRefused, check_destination
from lampo.dsar.settings import DsarSettings
from lampo.participant import TaskOutcome
from lampo.testing import Producer, TopicReader, eventually

CLIENTS = {"portal": "portal-secret", "staff": "staff-secret", "crm": "crm-secret"}
PORTAL = {"authorization": "Bearer portal-secret"}
STAFF = {"authorization": "Bearer staff-secret"}
CRM = {"authorization": "Bearer crm-secret"}


async def access(conn: Any, task: PrivacyTask) -> TaskOutcome:
    return TaskOutcome(
        result={
            "contact": [
                {"city": "=1+1", "phone": "+358 40 1234567", "note": "@SUM(A1)", "origin": "subject",
                 "legal_basis": "contract"},
            ],
        }
    )  # fmt: skip


async def erase(conn: Any, task: PrivacyTask) -> TaskOutcome:
    return TaskOutcome(erased={"contact": 1})


def client(env: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=env.dsar.runtime.app), base_url="http://dsar")


def zip_of(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


async def completed(producer: Producer, events: TopicReader, body: dict[str, Any]) -> dict[str, Any]:
    await producer.send(DSAR_REQUESTS, body["request_id"], event("dsar.submitted", body))
    [done] = await events.wait_for(for_request(body["request_id"], "dsar.completed"), timeout=60)
    return data_of(done)


async def left_of(env: Any, request_id: str) -> tuple[int, bool]:
    """(chunks stored, package key present) of a request's package."""
    async with env.pool.acquire() as conn:
        chunks = await conn.fetchval("SELECT count(*) FROM package_chunks WHERE request_id = $1", request_id)
        key = await conn.fetchval("SELECT count(*) FROM subject_keys WHERE subject_id = $1", f"package:{request_id}")
    return chunks, bool(key)


async def log_of(env: Any, request_id: str) -> list[tuple[str, str, str]]:
    async with env.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT actor, action, outcome FROM package_log WHERE request_id = $1 ORDER BY id", request_id
        )
    return [(r["actor"], r["action"], r["outcome"]) for r in rows]


async def test_the_channel_fetches_its_package_others_are_refused_and_every_fetch_is_audited(registry) -> None:
    body = submitted("access")  # channel: portal
    registry.add(body["identifiers"]["customer_number"])
    rid = body["request_id"]
    async with (
        participants(ParticipantProcess("t-reg", {"access": access})),
        dsar_service(
            registry, participants=["t-reg"], participant_categories={"t-reg": ["contact"]}, api_clients=CLIENTS,
            public_url="https://dsar.muuramenlampo.fi",
        ) as env,
        TopicReader(DSAR_EVENTS) as events,
        Producer() as producer,
        client(env) as http,
    ):  # fmt: skip
        done = await completed(producer, events, body)
        package = done["package"]
        fetched = await http.get(f"/v1/packages/{rid}", headers=PORTAL)
        by_staff = await http.get(f"/v1/packages/{rid}", headers=STAFF)
        other = await http.get(f"/v1/packages/{rid}", headers=CRM)
        anonymous = await http.get(f"/v1/packages/{rid}")
        unknown = await http.get("/v1/packages/req-none", headers=PORTAL)
        log = await log_of(env, rid)
        trail = await http.get(f"/v1/packages/{rid}/log", headers=STAFF)
        trail_by_portal = await http.get(f"/v1/packages/{rid}/log", headers=PORTAL)

    assert done["status"] == "completed"
    assert package["uri"] == f"https://dsar.muuramenlampo.fi/v1/packages/{rid}"
    completed_at = datetime.fromisoformat(done["completed_at"])
    assert datetime.fromisoformat(package["expires_at"]) == completed_at + timedelta(days=30)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "application/zip"
    assert hashlib.sha256(fetched.content).hexdigest() == package["sha256"]
    assert by_staff.status_code == 200 and by_staff.content == fetched.content
    assert other.status_code == 403  # a caller of the suite that no package is for
    assert anonymous.status_code == 401
    assert unknown.status_code == 404
    # every fetch the route answered recorded: who, what, how it ended (the 401 and the 403 of a
    # caller the route does not answer at all are refused before it, as on every route)
    assert log == [("portal", "fetch", "delivered"), ("staff", "fetch", "delivered")]
    assert [e["actor"] for e in trail.json()["log"]] == ["portal", "staff"]
    assert trail_by_portal.status_code == 403

    files = zip_of(fetched.content)
    # the manifest names the controller as the privacy statement does
    controller = json.loads(files["manifest.json"])["controller"]
    assert controller["name"] == "Muuramen Lämpö Oy" and controller["business_id"] == "0402810-7"
    assert controller["address"] == "PL 274, 40101 Jyväskylä"
    assert controller["contact_person"]["name"] == "Jani Lehtonen"
    # a CSV cell that a spreadsheet would run arrives neutralised; the JSON is exact
    [row] = list(csv.DictReader(io.StringIO(files["data/contact.csv"].decode())))
    assert row["city"] == "'=1+1" and row["phone"] == "'+358 40 1234567" and row["note"] == "'@SUM(A1)"
    [item] = json.loads(files["data/contact.json"])["t-reg"]
    assert item["city"] == "=1+1" and item["phone"] == "+358 40 1234567" and item["note"] == "@SUM(A1)"


async def test_an_expired_package_is_destroyed_by_the_sweep_and_its_address_answers_410(registry) -> None:
    body = submitted("access")
    registry.add(body["identifiers"]["customer_number"])
    rid = body["request_id"]
    async with (
        participants(ParticipantProcess("t-reg", {"access": access})),
        dsar_service(
            registry, participants=["t-reg"], participant_categories={"t-reg": ["contact"]}, api_clients=CLIENTS,
            package_ttl_days=7, package_sweep_interval_s=0.2,
        ) as env,
        TopicReader(DSAR_EVENTS) as events,
        Producer() as producer,
        client(env) as http,
    ):  # fmt: skip
        done = await completed(producer, events, body)
        expires_at = datetime.fromisoformat(done["package"]["expires_at"])
        assert expires_at == datetime.fromisoformat(done["completed_at"]) + timedelta(days=7)
        await asyncio.sleep(0.5)  # sweeps run: nothing has expired yet
        before = await left_of(env, rid)
        still = await http.get(f"/v1/packages/{rid}", headers=PORTAL)
        env.clock.set(expires_at + timedelta(seconds=1))

        async def destroyed() -> bool:
            return await left_of(env, rid) == (0, False)

        await eventually(destroyed, timeout=10)
        gone = await http.get(f"/v1/packages/{rid}", headers=PORTAL)
        log = await log_of(env, rid)

    assert before[0] >= 1 and before[1] and still.status_code == 200
    assert gone.status_code == 410 and gone.json()["error"]["reason"] == "gone"
    assert "expired" in gone.json()["error"]["detail"]
    assert ("system", "destroy", "destroyed") in log and log[-1] == ("portal", "fetch", "gone")


async def test_access_then_erasure_of_one_subject_leaves_the_earlier_package_gone(registry) -> None:
    customer, bystander = "700100", "700200"
    registry.add(customer)
    registry.add(bystander)
    first = submitted("access", customer_number=customer)
    others = submitted("access", customer_number=bystander)
    erasure = submitted("erasure", customer_number=customer)
    async with (
        participants(ParticipantProcess("t-reg", {"access": access, "erasure": erase})),
        dsar_service(
            registry, participants=["t-reg"], participant_categories={"t-reg": ["contact"]}, api_clients=CLIENTS,
            auto_approve=["erasure"],
        ) as env,
        TopicReader(DSAR_EVENTS) as events,
        Producer() as producer,
        client(env) as http,
    ):  # fmt: skip
        await completed(producer, events, first)
        await completed(producer, events, others)
        before = await http.get(f"/v1/packages/{first['request_id']}", headers=PORTAL)
        erased = await completed(producer, events, erasure)
        after = await http.get(f"/v1/packages/{first['request_id']}", headers=PORTAL)
        bystanders = await http.get(f"/v1/packages/{others['request_id']}", headers=PORTAL)
        left = await left_of(env, first["request_id"])
        async with env.pool.acquire() as conn:
            plain = await env.coordinator.read_package(conn, first["request_id"])

    assert before.status_code == 200
    assert after.status_code == 410 and "erased" in after.json()["error"]["detail"]
    assert left == (0, False) and plain is None  # chunks deleted, key destroyed: nothing opens it
    assert bystanders.status_code == 200  # another subject's package is untouched
    # the coordinator reports its own copies among the erasure's results
    assert erased["results"]["dsar"]["status"] == "done"
    assert erased["results"]["dsar"]["erased"] == {"contact": 1}
    assert erased["results"]["dsar"]["effects"][0]["action"] == "packages_destroyed"
    assert erased["results"]["dsar"]["effects"][0]["items"] == 1
    assert erased["results"]["t-reg"]["erased"] == {"contact": 1}


class Receiver:
    """The receiving controller: takes a POSTed ZIP over real HTTP (uvicorn on a free port)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[dict[str, str], bytes]] = []
        app = FastAPI()

        @app.post("/import")
        async def take(request: Request) -> JSONResponse:
            self.received.append((dict(request.headers), await request.body()))
            return JSONResponse({"ok": True}, status_code=202)

        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self.task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/import"

    async def __aenter__(self) -> Receiver:
        self.task = asyncio.create_task(self.server.serve())
        await eventually(lambda: self.server.started, timeout=10, interval=0.02)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


async def test_a_portability_package_is_transferred_to_another_controller_and_recorded(registry) -> None:
    portability, access_body = submitted("portability"), submitted("access")
    for b in (portability, access_body):
        registry.add(b["identifiers"]["customer_number"])
    rid = portability["request_id"]
    async with (
        participants(ParticipantProcess("t-reg", {"access": access})),
        dsar_service(
            registry, participants=["t-reg"], participant_categories={"t-reg": ["contact"]}, api_clients=CLIENTS,
            package_transfer_allow_loopback_http=True,
        ) as env,
        TopicReader(DSAR_EVENTS) as events,
        Producer() as producer,
        client(env) as http,
        Receiver() as receiver,
    ):  # fmt: skip
        done = await completed(producer, events, portability)
        await completed(producer, events, access_body)
        order = {"to": receiver.url, "country": "FI"}
        by_portal = await http.post(f"/v1/packages/{rid}/transfer", json=order, headers=PORTAL)
        outside = await http.post(f"/v1/packages/{rid}/transfer", json={**order, "country": "US"}, headers=STAFF)
        plain = await http.post(
            f"/v1/packages/{rid}/transfer", json={**order, "to": "http://example.fi/import"}, headers=STAFF
        )
        not_portable = await http.post(f"/v1/packages/{access_body['request_id']}/transfer", json=order, headers=STAFF)
        sent = await http.post(f"/v1/packages/{rid}/transfer", json=order, headers=STAFF)
        log = await http.get(f"/v1/packages/{rid}/log", headers=STAFF)

    assert by_portal.status_code == 403
    assert outside.status_code == 422 and outside.json()["error"]["reason"] == "outside_eu_eea"
    assert plain.status_code == 422 and "https" in plain.json()["error"]["detail"]
    assert not_portable.status_code == 409 and not_portable.json()["error"]["reason"] == "wrong_kind"
    assert sent.status_code == 200, sent.text
    record = sent.json()
    assert record["outcome"] == "delivered" and record["http_status"] == 202 and record["to"] == receiver.url
    [(headers, blob)] = receiver.received  # only the allowed transfer reached the receiver
    assert headers["content-type"] == "application/zip"
    assert hashlib.sha256(blob).hexdigest() == done["package"]["sha256"] == record["sha256"]
    [entry] = [e for e in log.json()["log"] if e["action"] == "transfer"]
    assert entry["actor"] == "staff" and entry["outcome"] == "delivered" and receiver.url in entry["detail"]
    assert "(FI)" in entry["detail"] and entry["at"]


def test_a_transfer_goes_only_to_another_controllers_https_address_in_the_eu_eea() -> None:
    settings = DsarSettings()
    assert check_destination(settings, "https://uusi-energia.fi/gdpr/import", "fi")
    assert check_destination(settings, "https://energie.example.de/import", "DE")
    refused = {
        ("http://uusi-energia.fi/import", "FI"): "invalid",
        ("http://127.0.0.1:9000/import", "FI"): "invalid",  # loopback http only when tests allow it
        ("https://127.0.0.1/import", "FI"): "invalid",
        ("https://10.1.2.3/import", "FI"): "invalid",
        ("https://user:secret@uusi-energia.fi/import", "FI"): "invalid",
        ("uusi-energia.fi/import", "FI"): "invalid",
        ("https://energy.example.com/import", "US"): "outside_eu_eea",
        ("https://energy.example.com/import", "XX"): "invalid",
    }
    for (to, country), reason in refused.items():
        with pytest.raises(TransferRefused) as refusal:
            check_destination(settings, to, country)
        assert refusal.value.reason == reason, to
        assert "secret" not in refusal.value.detail
    allowed = DsarSettings(package_transfer_allow_loopback_http=True)
    assert check_destination(allowed, "http://127.0.0.1:9000/import", "FI")
    with pytest.raises(TransferRefused):
        check_destination(allowed, "http://uusi-energia.fi/import", "FI")
