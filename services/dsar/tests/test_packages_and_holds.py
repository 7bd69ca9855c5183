"""Access and portability packages (encrypted at rest, keys destroyed), legal holds in an
erasure, and the erasure report."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from typing import Any

from dsar_support import (
    ParticipantProcess,
    data_of,
    dsar_service,
    event,
    for_request,
    legal_hold_state,
    participants,
    submitted,
)

from lampo.contracts.catalog import DSAR_EVENTS, DSAR_REQUESTS, PRIVACY_TASKS
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyTask, Retained
from lampo.dsar.report import erasure_report
from lampo.participant import TaskOutcome
from lampo.testing import Producer, TopicReader, eventually

AUDIO = b"RIFF....WAVEfmt synthetic audio"


async def register_access(conn: Any, task: PrivacyTask) -> TaskOutcome:
    return TaskOutcome(
        result={
            "contact": [
                {
                    "section": "contact",
                    "data": {"email": "asiakas5@example.fi", "city": "Muurame"},
                    "origin": "subject",
                    "legal_basis": "contract",
                    "source_system": "crm",
                },
            ],
            "basic": [
                {
                    "section": "person",
                    "data": {"last_name": "Asiakas5"},
                    "origin": "authority",
                    "legal_basis": "legal_obligation",
                    "source_system": "vtj",
                },
            ],
        }
    )


async def recordings_access(conn: Any, task: PrivacyTask) -> TaskOutcome:
    call = {
        "recording_id": "rec-1",
        "started_at": "2026-10-01T10:00:00Z",
        "media_type": "audio/wav",
        "audio_base64": base64.b64encode(AUDIO).decode(),
    }
    return TaskOutcome(result={"customer_relationship": [call]})


async def erase(conn: Any, task: PrivacyTask) -> TaskOutcome:
    return TaskOutcome(
        erased={c: 1 for c in task.categories if c in ("contact", "basic")},
        retained=[
            Retained.model_validate(
                {"category": "billing", "items": 6, "legal_basis": "Accounting Act 2:10", "until": "2032-12-31"}
            )
        ]
        if "billing" in task.categories
        else [],
    )


def zip_of(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


async def test_access_and_portability_packages_are_built_stored_encrypted_and_the_request_key_destroyed(
    registry,
) -> None:
    access, portability = submitted("access"), submitted("portability")
    for body in (access, portability):
        registry.add(body["identifiers"]["customer_number"])
    async with (
        participants(
            ParticipantProcess("t-reg", {"access": register_access}),
            ParticipantProcess("t-rec", {"access": recordings_access}),
        ),
        dsar_service(
            registry,
            participants=["t-reg", "t-rec"],
            participant_categories={"t-reg": ["basic", "contact"], "t-rec": ["customer_relationship"]},
        ) as env,
        TopicReader(DSAR_EVENTS) as events,
        Producer() as producer,
    ):
        for body in (access, portability):
            await producer.send(DSAR_REQUESTS, body["request_id"], event("dsar.submitted", body))
        [done] = await events.wait_for(for_request(access["request_id"], "dsar.completed"))
        [done_p] = await events.wait_for(for_request(portability["request_id"], "dsar.completed"))
        async with env.pool.acquire() as conn:
            plain = await env.coordinator.read_package(conn, access["request_id"])
            plain_p = await env.coordinator.read_package(conn, portability["request_id"])
            stored = await conn.fetchval(
                "SELECT string_agg(blob, ''::bytea ORDER BY n) FROM package_chunks WHERE request_id = $1",
                access["request_id"],
            )  # stored in encrypted chunks
            keys = {r["subject_id"] for r in await conn.fetch("SELECT subject_id FROM subject_keys")}
            sealed_left = await conn.fetchval("SELECT count(*) FROM tasks WHERE sealed_result IS NOT NULL")

    package = data_of(done)["package"]
    assert data_of(done)["status"] == "completed"
    assert package["format"] == "zip" and package["sha256"] == hashlib.sha256(plain).hexdigest()
    files = zip_of(plain)
    assert {"manifest.json", "data/contact.json", "data/basic.json", "data/customer_relationship.json"} <= set(files)
    assert files["recordings/t-rec-rec-1.wav"] == AUDIO
    assert "data/contact.csv" in files and b"data.email" in files["data/contact.csv"]
    manifest = json.loads(files["manifest.json"])
    assert manifest["request"]["request_id"] == access["request_id"]
    assert set(manifest["participants"]) == {"t-reg", "t-rec"}
    assert {"contract", "legal_obligation"} <= set(manifest["legal_bases"])
    assert "crm" in manifest["sources"]
    # at rest: encrypted; the request's result key is gone, and so are the sealed results
    assert b"example.fi" not in bytes(stored) and AUDIO not in bytes(stored)
    assert f"result-key:{access['request_id']}" not in keys and f"package:{access['request_id']}" in keys
    assert sealed_left == 0
    # portability: only what the subject provided, on consent or contract
    portable = zip_of(plain_p)
    assert "data/contact.json" in portable and "data/basic.json" not in portable
    assert json.loads(portable["manifest.json"])["format"] == "portability"
    assert data_of(done_p)["package"]["sha256"] == hashlib.sha256(plain_p).hexdigest()


async def test_an_erasure_keeps_what_a_legal_hold_covers_and_reports_it(registry) -> None:
    body = submitted("erasure", categories=["basic", "contact", "billing"])
    customer = body["identifiers"]["customer_number"]
    registry.add(customer)
    hold = legal_hold_state(customer)
    async with (
        participants(ParticipantProcess("t-reg", {"erasure": erase}), ParticipantProcess("t-bill", {"erasure": erase})),
        dsar_service(
            registry,
            participants=["t-reg", "t-bill"],
            auto_approve=["erasure"],
            participant_categories={"t-reg": ["basic", "contact"], "t-bill": ["billing"]},
        ) as env,
        TopicReader(DSAR_EVENTS) as events,
        TopicReader(PRIVACY_TASKS) as tasks,
        Producer() as producer,
    ):
        await producer.send(
            "retention.holds.v1", customer, CloudEvent.new("legal_hold.state", "urn:lampo:retention", hold)
        )

        async def held() -> bool:
            async with env.pool.acquire() as conn:
                return bool(await conn.fetchval("SELECT 1 FROM legal_holds WHERE customer_number = $1", customer))

        await eventually(held)
        await producer.send(DSAR_REQUESTS, body["request_id"], event("dsar.submitted", body))
        [done] = await events.wait_for(for_request(body["request_id"], "dsar.completed"))
        sent = await tasks.wait_for(lambda r: r.key == body["request_id"].encode(), count=2)
        view = await env.request(body["request_id"])

    result = data_of(done)
    assert result["status"] == "completed_with_retention"
    assert all("basic" not in data_of(t)["categories"] for t in sent)
    assert result["results"]["t-reg"]["erased"] == {"contact": 1}
    assert {
        "category": "basic",
        "items": 0,
        "legal_basis": "legal hold: R 26/1234 (Keski-Suomen käräjäoikeus)",
        "until": None,
    } in result["results"]["t-reg"]["retained"]
    assert result["results"]["t-bill"]["retained"][0]["legal_basis"] == "Accounting Act 2:10"
    report = erasure_report(view["completion"] and {**view, "customer_numbers": [customer]}, view["history"])
    assert "legal hold: R 26/1234" in report and "Accounting Act 2:10" in report and "2032-12-31" in report
