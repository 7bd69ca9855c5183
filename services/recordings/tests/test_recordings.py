"""The recordings store on the real broker and database: single and chunked calls reassembled and
verified, incomplete calls held, e-mails archived, access with audio, erasure, bad input; every
task kind (issue #15: rectification, restriction and its lift, objection, portability marks) and
the resolve route."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from lampo.contracts.catalog import PRIVACY_ACKS, PRIVACY_TASKS, RECORDINGS_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyTask
from lampo.contracts.recordings import MAX_CHUNK_BYTES
from lampo.crypto import new_request_keypair
from lampo.messaging.topics import dlq
from lampo.participant import is_streamed, open_result
from lampo.recordings.handlers import RECORD_NOT_ALTERED
from lampo.recordings.store import RecordingsStore, incomplete_recordings
from lampo.testing import (
    Producer,
    TopicReader,
    collect_acks,
    eventually,
    header,
    privacy_task,
    run_privacy_task,
    unique,
)

SOURCE = "urn:system:telephony"
EMAIL_SUBJECT = "Laskusta / Testi Asiakas902"
EMAIL_BODY = "Hei, olen Testi Asiakas902 (asiakas902@example.fi), Testikatu 3, 40950 Muurame."


def new_customer_number() -> str:
    return str(uuid.uuid4().int % 10**9)


def audio_bytes(size: int) -> bytes:
    return b"RIFF" + os.urandom(size - 4)


def call(
    customer: str, recording_id: str, audio: bytes, index: int | None = None, count: int | None = None, **extra: Any
) -> CloudEvent:
    data: dict[str, Any] = {
        "customer_number": customer,
        "recording_id": recording_id,
        "started_at": "2026-11-20T09:15:00Z",
        "duration_s": 42.5,
        "media_type": "audio/wav",
        "audio_base64": base64.b64encode(audio).decode(),
        **extra,
    }
    if index is not None:
        data |= {"chunk_index": index, "chunk_count": count}
    return CloudEvent.new("call.recorded", SOURCE, data)


def email(customer: str) -> CloudEvent:
    return CloudEvent.new(
        "email.archived",
        "urn:system:mail",
        {
            "customer_number": customer,
            "message_id": f"<{uuid.uuid4().hex}@example.fi>",
            "at": "2026-11-21T10:00:00Z",
            "subject": EMAIL_SUBJECT,
            "body_text": EMAIL_BODY,
        },
    )


def chunks_of(audio: bytes, n: int) -> list[bytes]:
    size = -(-len(audio) // n)
    return [audio[i * size : (i + 1) * size] for i in range(n)]


async def run_access(t: PrivacyTask, private_key: bytes) -> tuple[str, Any]:
    """Status and opened result of an access task (whole or in parts, either format)."""
    async with TopicReader(PRIVACY_ACKS) as acks, Producer() as producer:
        await producer.send(
            PRIVACY_TASKS, t.request_id, CloudEvent.new("privacy.task", "urn:lampo:dsar", t), signer="coordinator"
        )
        acks_data = await collect_acks(acks, t.task_id)
    total = next((d["result_parts"] for d in acks_data if d.get("result_parts")), 1)
    result = open_result(private_key, {d["result_part"] or 0: d["result"] for d in acks_data}, total)
    return acks_data[-1]["status"], result


async def dead_letters(reader: TopicReader, key: str, count: int) -> list[Any]:
    """The DLQ copies of ``count`` distinct records with this key, in their original order. A
    rebalance at start-up (two consumers of the service share one group) may redeliver a batch,
    so a record can be dead-lettered twice: at least once is the guarantee, so dedupe on offset."""
    wanted = count
    while True:
        records = await reader.wait_for(lambda r: r.key == key.encode(), count=wanted)
        distinct = {(header(r, "error.partition"), header(r, "error.offset")): r for r in reversed(records)}
        if len(distinct) >= count:
            return sorted(distinct.values(), key=lambda r: int(header(r, "error.offset") or 0))
        wanted = len(records) + 1


async def ingest_all(recordings, customer: str) -> tuple[dict[str, bytes], str]:
    """A single-event call, a three-chunk call sent out of order, an e-mail and a call missing
    its last chunk. Returns the complete calls' audio and the incomplete call's id."""
    single_id, chunked_id, partial_id = unique("rec"), unique("rec"), unique("rec")
    single, chunked, partial = audio_bytes(5_000), audio_bytes(600_000), audio_bytes(3_000)
    parts = chunks_of(chunked, 3)
    async with Producer() as producer:
        await producer.send(RECORDINGS_INBOUND, customer, call(customer, single_id, single))
        for index in (2, 0, 1):
            await producer.send(RECORDINGS_INBOUND, customer, call(customer, chunked_id, parts[index], index, 3))
        await producer.send(RECORDINGS_INBOUND, customer, email(customer))
        await producer.send(RECORDINGS_INBOUND, customer, call(customer, partial_id, chunks_of(partial, 2)[0], 0, 2))
    async with recordings.runtime.pool.acquire() as conn:
        await eventually(
            lambda: conn.fetchval("SELECT count(*) = 2 FROM recordings WHERE customer_number = $1", customer)
        )
        await eventually(
            lambda: conn.fetchval("SELECT count(*) = 1 FROM recording_chunks WHERE customer_number = $1", customer)
        )
        await eventually(lambda: conn.fetchval("SELECT count(*) = 1 FROM emails WHERE customer_number = $1", customer))
    return {single_id: single, chunked_id: chunked}, partial_id


async def test_calls_are_reassembled_verified_and_stored_encrypted_with_searchable_metadata(recordings) -> None:
    customer = new_customer_number()
    calls, _ = await ingest_all(recordings, customer)
    async with recordings.runtime.pool.acquire() as conn:
        rows = {
            r["recording_id"]: r
            for r in await conn.fetch("SELECT * FROM recordings WHERE customer_number = $1", customer)
        }
        for recording_id, audio in calls.items():
            row = rows[recording_id]
            assert row["sha256"] == hashlib.sha256(audio).hexdigest()
            assert row["size_bytes"] == len(audio)
            assert audio[100:164] not in bytes(row["audio"])  # encrypted at rest
        store = RecordingsStore(conn, recordings.runtime.keys)
        found = await store.search(customer_number=customer, media_type="audio/wav")
        assert {r["recording_id"] for r in found} == set(calls)
        assert set(found[0]) == {
            "recording_id",
            "customer_number",
            "started_at",
            "duration_s",
            "media_type",
            "size_bytes",
            "sha256",
        }
        email_row = await conn.fetchrow("SELECT * FROM emails WHERE customer_number = $1", customer)
        assert b"Asiakas902" not in bytes(email_row["subject"]) + bytes(email_row["body"]) + bytes(
            email_row["message_id"]
        )


async def test_an_incomplete_recording_is_held_listed_and_completed_when_the_rest_arrives(recordings) -> None:
    customer = new_customer_number()
    recording_id = unique("rec")
    audio = audio_bytes(4_000)
    first, second = chunks_of(audio, 2)
    async with Producer() as producer:
        await producer.send(RECORDINGS_INBOUND, customer, call(customer, recording_id, first, 0, 2))
    async with recordings.runtime.pool.acquire() as conn:
        held = await eventually(lambda: incomplete_recordings(conn))
    assert [(r["recording_id"], r["customer_number"], r["received"], r["chunk_count"]) for r in held] == [
        (recording_id, customer, 1, 2)
    ]

    settings = recordings.settings
    env = {
        **os.environ,
        "LAMPO_DATABASE": settings.database or "",
        "LAMPO_MASTER_KEY": settings.master_key.get_secret_value() if settings.master_key else "",
    }
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("lampo")),
        "recordings",
        "incomplete",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert recording_id in out.decode() and "1/2" in out.decode()

    async with Producer() as producer:
        await producer.send(
            RECORDINGS_INBOUND,
            customer,
            call(customer, recording_id, second, 1, 2, sha256=hashlib.sha256(audio).hexdigest()),
        )
    async with recordings.runtime.pool.acquire() as conn:
        digest = await eventually(
            lambda: conn.fetchval("SELECT sha256 FROM recordings WHERE recording_id = $1", recording_id)
        )
        assert digest == hashlib.sha256(audio).hexdigest()
        assert await incomplete_recordings(conn) == []


async def test_bad_input_is_dead_lettered_with_its_reason_and_the_consumer_goes_on(recordings) -> None:
    customer = new_customer_number()
    good_id, mismatch_id = unique("rec"), unique("rec")
    malformed = json.loads(call(customer, unique("rec"), b"abc").to_bytes())
    malformed["data"]["audio_base64"] = "not*base64=="
    out_of_range = call(customer, unique("rec"), b"abcd", 3, 3)
    oversize = call(customer, unique("rec"), audio_bytes(MAX_CHUNK_BYTES + 1))
    wrong_hash = call(customer, unique("rec"), b"abcd", sha256="0" * 64)
    async with TopicReader(dlq(RECORDINGS_INBOUND)) as dead, Producer() as producer:
        await producer.send(RECORDINGS_INBOUND, customer, json.dumps(malformed).encode())
        await producer.send(RECORDINGS_INBOUND, customer, out_of_range)
        await producer.send(RECORDINGS_INBOUND, customer, oversize)
        await producer.send(RECORDINGS_INBOUND, customer, call(customer, mismatch_id, b"abcd", 0, 3))
        await producer.send(RECORDINGS_INBOUND, customer, call(customer, mismatch_id, b"efgh", 1, 4))
        await producer.send(RECORDINGS_INBOUND, customer, wrong_hash)
        await producer.send(RECORDINGS_INBOUND, customer, call(customer, good_id, b"good audio"))
        records = await dead_letters(dead, customer, 5)
    assert [header(r, "error.reason") for r in records] == [
        "invalid_base64",
        "chunk_out_of_range",
        "oversize_chunk",
        "chunk_count_mismatch",
        "sha256_mismatch",
    ]
    assert records[0].value == json.dumps(malformed).encode()  # copied unchanged
    assert "chunk_count" in (header(records[3], "error.detail") or "")
    async with recordings.runtime.pool.acquire() as conn:
        assert await eventually(
            lambda: conn.fetchval("SELECT count(*) = 1 FROM recordings WHERE recording_id = $1", good_id)
        )
        # the first chunk of the mismatched call is still held, not lost
        assert await conn.fetchval("SELECT count(*) FROM recording_chunks WHERE recording_id = $1", mismatch_id) == 1


async def test_access_returns_recordings_with_audio_incomplete_chunks_and_emails(recordings) -> None:
    customer = new_customer_number()
    calls, partial_id = await ingest_all(recordings, customer)
    private, public = new_request_keypair()
    status, opened = await run_access(
        privacy_task(recordings.settings.participant_name, "access", customer, result_key=public), private
    )
    assert status == "done"
    result = opened["customer_relationship"]
    got = {r["recording_id"]: r for r in result["recordings"]}
    assert set(got) == set(calls)
    for recording_id, audio in calls.items():
        assert base64.b64decode(got[recording_id]["audio_base64"]) == audio
        assert got[recording_id]["sha256"] == hashlib.sha256(audio).hexdigest()
        assert got[recording_id]["file_name"].startswith("recordings/") and got[recording_id]["file_name"].endswith(
            ".wav"
        )
    assert [(c["recording_id"], c["chunk_index"], c["chunk_count"]) for c in result["incomplete_recordings"]] == [
        (partial_id, 0, 2)
    ]
    [mail] = result["emails"]
    assert (mail["subject"], mail["body_text"]) == (EMAIL_SUBJECT, EMAIL_BODY)


async def test_a_large_access_result_travels_in_parts_that_join_to_the_whole_audio(recordings) -> None:
    customer = new_customer_number()
    recording_id = unique("rec")
    audio = audio_bytes(1_800_000)  # sealed, larger than one privacy.ack record may be
    async with Producer() as producer:
        for index, part in enumerate(chunks_of(audio, 3)):
            await producer.send(RECORDINGS_INBOUND, customer, call(customer, recording_id, part, index, 3))
    async with recordings.runtime.pool.acquire() as conn:
        await eventually(
            lambda: conn.fetchval("SELECT count(*) = 1 FROM recordings WHERE recording_id = $1", recording_id)
        )
    private, public = new_request_keypair()
    access = privacy_task(recordings.settings.participant_name, "access", customer, result_key=public)
    async with TopicReader(PRIVACY_ACKS) as acks, Producer() as producer:
        await producer.send(
            PRIVACY_TASKS,
            access.request_id,
            CloudEvent.new("privacy.task", "urn:lampo:dsar", access),
            signer="coordinator",
        )
        acks_data = await collect_acks(acks, access.task_id)
        records = await acks.wait_for(
            lambda r: json.loads(r.value)["data"]["task_id"] == access.task_id, count=len(acks_data)
        )
    total = acks_data[-1]["result_parts"]
    assert total and total > 1 and sorted(d["result_part"] for d in acks_data) == list(range(total))
    # streamed: each part sealed on its own, the audio raw (not base64 in JSON) inside the seal
    assert all(is_streamed(d["result"]) for d in acks_data)
    assert all(len(r.value) < 1024 * 1024 for r in records)
    assert sum(len(d["result"]) for d in acks_data) < len(audio) * 4 / 3 * 1.1
    result = open_result(private, {d["result_part"]: d["result"] for d in acks_data}, total)
    [got] = [r for r in result["customer_relationship"]["recordings"] if r["recording_id"] == recording_id]
    assert base64.b64decode(got["audio_base64"]) == audio


async def test_erasure_removes_audio_bodies_metadata_and_keys_idempotently_and_leaves_no_personal_data(
    recordings, scan
) -> None:
    customer, other = new_customer_number(), new_customer_number()
    calls, partial_id = await ingest_all(recordings, customer)
    await ingest_all(recordings, other)
    erasure = privacy_task(recordings.settings.participant_name, "erasure", customer)
    first, again = await run_privacy_task(erasure, times=2)
    assert first == again  # the repeated task is answered from the stored ack
    assert first["status"] == "done"
    assert first["erased"] == {"customer_relationship": 4}  # two calls, one incomplete call, one e-mail
    assert first["retained"] == []

    async with recordings.runtime.pool.acquire() as conn:
        for table in ("recordings", "recording_chunks", "emails", "customers"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table} WHERE customer_number = $1", customer) == 0
        assert await conn.fetchval("SELECT count(*) FROM subject_keys") == 1  # only the other customer's key
        needles: list[str | bytes] = [customer, *calls, partial_id]
        needles += [hashlib.sha256(a).hexdigest() for a in calls.values()]
        needles += [a[i : i + 48] for a in calls.values() for i in (0, 1000, len(a) - 48)]
        # the other customer's e-mail holds the same text, encrypted: no clear text anywhere
        needles += [EMAIL_SUBJECT, EMAIL_BODY, "Asiakas902", "asiakas902@example.fi"]
        assert await scan(conn, needles) == []
        assert await conn.fetchval("SELECT count(*) FROM recordings WHERE customer_number = $1", other) == 2

    [later] = await run_privacy_task(privacy_task(recordings.settings.participant_name, "erasure", customer))
    assert later["erased"] == {"customer_relationship": 0}


async def test_restriction_takes_recordings_out_of_normal_queries_and_rectification_changes_nothing(recordings) -> None:
    customer = new_customer_number()
    await ingest_all(recordings, customer)
    [rectified] = await run_privacy_task(privacy_task(recordings.settings.participant_name, "rectification", customer))
    [restricted] = await run_privacy_task(privacy_task(recordings.settings.participant_name, "restriction", customer))
    assert rectified["status"] == restricted["status"] == "done"
    async with recordings.runtime.pool.acquire() as conn:
        store = RecordingsStore(conn, recordings.runtime.keys)
        assert await store.search(customer_number=customer) == []
        assert len(await store.recordings_of(customer)) == 2


# -- every task kind (issue #15), resolve -------------------------------------------------------

TOKEN = "test-dsar-token"
CALLERS = {"dsar": TOKEN, "staff": "test-staff-token"}


async def task(recordings: Any, kind: str, customer: str, **extra: Any) -> dict[str, Any]:
    t = privacy_task(recordings.settings.participant_name, kind, customer).model_copy(update=extra)
    [ack] = await run_privacy_task(t)
    return ack


async def test_every_kind_is_done_and_a_customer_the_store_does_not_know_changes_nothing(recordings) -> None:
    stranger = new_customer_number()
    for kind, extra in [
        ("erasure", {}),
        ("purge", {}),
        ("rectification", {}),
        ("restriction", {}),
        ("restriction", {"lift": True}),
        ("objection", {"scope": "processing"}),
        ("objection", {"scope": "profiling"}),
    ]:
        ack = await task(recordings, kind, stranger, **extra)
        assert ack["status"] == "done", (kind, ack)
        assert ack["erased"] in ({}, {"customer_relationship": 0}) and ack["retained"] == []
        if kind not in ("erasure", "purge"):
            assert [(e["action"], e["category"], e["items"]) for e in ack["effects"]] == [
                ("nothing_held", "customer_relationship", 0)
            ], kind
    async with recordings.runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM customers WHERE customer_number = $1", stranger) == 0


async def test_rectification_does_not_rewrite_archived_correspondence_and_says_why(recordings) -> None:
    customer = new_customer_number()
    await ingest_all(recordings, customer)
    # as the coordinator plans it: the categories of the corrected section (of which it holds copies)
    ack = await task(recordings, "rectification", customer, categories=["contact"])
    assert ack["status"] == "done"
    # two complete calls, one incomplete, one e-mail
    assert ack["effects"] == [
        {
            "action": "not_altered",
            "category": "customer_relationship",
            "items": 4,
            "legal_basis": RECORD_NOT_ALTERED,
            "at": None,
        }
    ]
    private, public = new_request_keypair()
    _, opened = await run_access(
        privacy_task(recordings.settings.participant_name, "access", customer, result_key=public), private
    )
    [mail] = opened["customer_relationship"]["emails"]
    assert (mail["subject"], mail["body_text"]) == (EMAIL_SUBJECT, EMAIL_BODY)


async def test_restriction_is_marked_honoured_and_lifted_with_when(recordings) -> None:
    customer = new_customer_number()
    await ingest_all(recordings, customer)
    recordings.clock.set(datetime(2026, 11, 28, 10, tzinfo=UTC))
    restricted = await task(recordings, "restriction", customer)
    assert [(e["action"], e["items"], e["at"]) for e in restricted["effects"]] == [
        ("restricted", 4, "2026-11-28T10:00:00Z")
    ]
    async with recordings.runtime.pool.acquire() as conn:
        store = RecordingsStore(conn, recordings.runtime.keys)
        assert await store.search(customer_number=customer) == []
        recordings.clock.set(datetime(2026, 12, 1, 9, tzinfo=UTC))
        lifted = await task(recordings, "restriction", customer, lift=True)
        assert [(e["action"], e["items"], e["at"]) for e in lifted["effects"]] == [
            ("restriction_lifted", 4, "2026-12-01T09:00:00Z")
        ]
        assert len(await store.search(customer_number=customer)) == 2


async def test_objection_to_processing_restricts_and_other_scopes_find_nothing(recordings) -> None:
    customer = new_customer_number()
    await ingest_all(recordings, customer)
    marketing = await task(recordings, "objection", customer, scope="direct_marketing")
    assert [e["action"] for e in marketing["effects"]] == ["nothing_held"]
    async with recordings.runtime.pool.acquire() as conn:
        store = RecordingsStore(conn, recordings.runtime.keys)
        assert len(await store.search(customer_number=customer)) == 2
        ack = await task(recordings, "objection", customer, scope="processing")
        [effect] = ack["effects"]
        assert (effect["action"], effect["items"]) == ("processing_restricted", 4)
        assert "legitimate interest" in effect["legal_basis"]
        assert await store.search(customer_number=customer) == []


async def test_every_item_of_access_says_its_origin_and_basis_so_portability_leaves_it_out(recordings) -> None:
    customer = new_customer_number()
    await ingest_all(recordings, customer)
    private, public = new_request_keypair()
    _, opened = await run_access(
        privacy_task(recordings.settings.participant_name, "access", customer, result_key=public), private
    )
    items = [i for kind in opened["customer_relationship"].values() for i in kind]
    assert len(items) == 4
    assert {(i["origin"], i["legal_basis"]) for i in items} == {("controller", "legitimate_interest")}


async def test_resolve_answers_a_customer_number_only_the_recordings_store_knows(start_recordings) -> None:
    async with start_recordings(api_clients=CALLERS) as recordings:
        customer = new_customer_number()
        await ingest_all(recordings, customer)
        transport = httpx.ASGITransport(app=recordings.runtime.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://recordings") as http:

            async def resolve(body: Any, token: str | None = TOKEN) -> httpx.Response:
                headers = {"authorization": f"Bearer {token}"} if token else {}
                content = body if isinstance(body, bytes) else json.dumps(body).encode()
                return await http.post("/v1/resolve", content=content, headers=headers)

            known = await resolve({"customer_number": customer})
            assert (known.status_code, known.json()) == (200, {"customer_numbers": [customer]})
            unknown = await resolve({"customer_number": new_customer_number()})
            assert (unknown.status_code, unknown.json()) == (404, {"error": "no_match"})
            assert (await resolve({"email": "asiakas902@example.fi"})).status_code == 404  # no e-mail index
            assert (await resolve({"customer_number": customer}, token=None)).status_code == 401
            assert (await resolve({"customer_number": customer}, token="wrong")).status_code == 401
            # another caller of the suite (staff) is known, and still not answered here
            assert (await resolve({"customer_number": customer}, token="test-staff-token")).status_code == 403
            bad = await resolve({"customer_number": 42})
            assert (bad.status_code, bad.json()) == (422, {"error": "invalid_type", "field": "customer_number"})
            assert (await resolve({"name": "x"})).json() == {"error": "unknown_field", "field": "name"}
            assert (await resolve(b"[]")).status_code == 422
