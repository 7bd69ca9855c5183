"""Streamed access results on the real broker and database: a participant's result larger than
one record arrives in parts, each sealed on its own, and the coordinator builds the package from
them part by part, whatever order the parts come in, never mixing two readings (runs) of one
task."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import zipfile
from collections.abc import AsyncIterator
from typing import Any

from dsar_support import ParticipantProcess, data_of, dsar_service, event, for_request, participants, submitted

from lampo.contracts.catalog import DSAR_EVENTS, DSAR_REQUESTS, PRIVACY_ACKS, PRIVACY_TASKS
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyAck, PrivacyTask
from lampo.dsar.coordinator import _Building
from lampo.dsar.package import PackageBuilder
from lampo.participant import Attachment, Items, Piece, SealedParts, TaskOutcome, seal_stream
from lampo.testing import Producer, TopicReader, eventually

ROWS = 20_000
CLIPS = [os.urandom(1_200_000), os.urandom(70_000)]  # the first spans several parts


def reading(i: int) -> dict[str, Any]:
    return {
        "customer_number": "c-1",
        "kind": "consumption_report",
        "data": {"metering_point": f"MUL-{i % 50:02d}", "period_start": f"2020-01-{i % 28 + 1:02d}", "n": i},
        "source_system": "metering",
        "origin": "third_party",
        "legal_basis": "contract",
    }


async def readings(rows: int = ROWS) -> AsyncIterator[Piece]:
    yield Items(("consumption",), [])
    for low in range(0, rows, 1500):
        yield Items(("consumption",), [reading(i) for i in range(low, min(rows, low + 1500))])


async def calls() -> AsyncIterator[Piece]:
    for n, clip in enumerate(CLIPS):
        yield Attachment(
            ("customer_relationship", "recordings"), {"recording_id": f"rec-{n}", "media_type": "audio/wav"}, clip
        )
    yield Items(("customer_relationship", "emails"), [{"message_id": "m-1", "subject": "Lasku"}])


async def registry_access(conn: Any, task: PrivacyTask) -> TaskOutcome:
    return TaskOutcome(stream=readings())


async def recordings_access(conn: Any, task: PrivacyTask) -> TaskOutcome:
    return TaskOutcome(stream=calls())


def zip_of(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def check_package(files: dict[str, bytes], rows: int = ROWS) -> None:
    consumption = json.loads(files["data/consumption.json"])["t-reg"]
    assert [r["data"]["n"] for r in consumption] == list(range(rows))  # each once, in order
    table = list(csv.DictReader(io.StringIO(files["data/consumption.csv"].decode())))
    assert len(table) == rows and table[5]["data.n"] == "5"


async def leftovers(env: Any, request_id: str) -> int:
    async with env.pool.acquire() as conn:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM result_parts WHERE task_id IN (SELECT task_id FROM tasks WHERE request_id = $1)",
            request_id,
        )
    return count


TWO_STORES: dict[str, Any] = {
    "participants": ["t-reg", "t-rec"],
    "participant_categories": {"t-reg": ["consumption"], "t-rec": ["customer_relationship"]},
}
"""The coordinator's participants in these tests: a register and a recordings store."""


async def test_results_larger_than_a_record_stream_in_parts_into_the_package(registry) -> None:
    body = submitted("access")
    registry.add(body["identifiers"]["customer_number"])
    async with (
        participants(
            ParticipantProcess("t-reg", {"access": registry_access}),
            ParticipantProcess("t-rec", {"access": recordings_access}),
        ),
        dsar_service(registry, **TWO_STORES) as env,
        TopicReader(DSAR_EVENTS) as events,
        TopicReader(PRIVACY_ACKS) as acks,
        Producer() as producer,
    ):
        await producer.send(DSAR_REQUESTS, body["request_id"], event("dsar.submitted", body))
        [done] = await events.wait_for(for_request(body["request_id"], "dsar.completed"))
        sent = await acks.wait_for(lambda r: r.key == body["request_id"].encode(), count=4)
        async with env.pool.acquire() as conn:
            plain = await env.coordinator.read_package(conn, body["request_id"])
        left = await leftovers(env, body["request_id"])
        # Had another instance of the coordinator completed the request, the head start this one
        # began (the subject's data, in scratch files) would be left behind: the next round of
        # the checker drops it.
        stale = env.coordinator._building[body["request_id"]] = _Building(
            os.urandom(32), PackageBuilder(participant_categories={}, portability=False)
        )
        await eventually(lambda: body["request_id"] not in env.coordinator._building, timeout=10)
        assert stale.builder.audio.closed

    assert data_of(done)["status"] == "completed" and plain is not None
    assert all(len(r.value) < 1024 * 1024 for r in sent)  # every part fits a record
    files = zip_of(plain)
    check_package(files)
    assert [files[f"recordings/t-rec-rec-{n}.wav"] for n in range(len(CLIPS))] == CLIPS
    recordings = json.loads(files["data/customer_relationship.json"])["t-rec"]
    assert [r["audio_file"] for r in recordings["recordings"]] == [
        "recordings/t-rec-rec-0.wav",
        "recordings/t-rec-rec-1.wav",
    ]
    assert recordings["emails"] == [{"message_id": "m-1", "subject": "Lasku"}]
    assert left == 0  # the sealed parts go once the package is built


async def test_parts_in_any_order_make_the_package_and_an_unfinished_second_run_is_not_mixed_in(registry) -> None:
    body = submitted("access")
    registry.add(body["identifiers"]["customer_number"])
    async with (
        participants(ParticipantProcess("t-rec", {"access": recordings_access})),
        dsar_service(registry, **TWO_STORES) as env,
        TopicReader(DSAR_EVENTS) as events,
        TopicReader(PRIVACY_TASKS) as tasks,
        Producer() as producer,
    ):
        await producer.send(DSAR_REQUESTS, body["request_id"], event("dsar.submitted", body))
        [record] = await tasks.wait_for(
            lambda r: r.key == body["request_id"].encode() and json.loads(r.value)["data"]["participant"] == "t-reg"
        )
        task = PrivacyTask.model_validate(json.loads(record.value)["data"])
        assert task.result_key is not None
        first = await seal_stream(task.result_key, readings(), part_bytes=200 * 1024)
        second = await seal_stream(task.result_key, readings(500), part_bytes=20 * 1024)  # read again, unfinished
        assert isinstance(first, SealedParts) and isinstance(second, SealedParts)
        with first, second:
            whole = list(first.parts())
            unfinished = list(second.parts())[:2]
        assert len(whole) > 4 and len(unfinished) == 2

        def ack(n: int, part: str, total: int | None) -> CloudEvent:
            data = PrivacyAck(
                request_id=task.request_id, task_id=task.task_id, participant="t-reg", status="done",
                result=part, result_part=n, result_parts=total,
            )  # fmt: skip
            return CloudEvent.new("privacy.ack", "urn:lampo:t-reg", data)

        shuffled = [ack(n, p, len(whole)) for n, p in whole]
        random.Random(7).shuffle(shuffled)
        # the last part (with the total) among the first, the other run's parts in between
        order = [ack(*whole[-1], len(whole)), ack(*unfinished[0], None), *shuffled, ack(*unfinished[1], None)]
        for e in order:
            await producer.send(PRIVACY_ACKS, task.request_id, e, signer="t-reg")
        [done] = await events.wait_for(for_request(body["request_id"], "dsar.completed"))
        async with env.pool.acquire() as conn:
            plain = await env.coordinator.read_package(conn, body["request_id"])

    assert data_of(done)["status"] == "completed" and plain is not None
    check_package(zip_of(plain))
