"""The registry's access result for a heavy subject: read in pages and streamed in parts (each
sealed on its own), its consumption items built as JSON by PostgreSQL exactly as the Python
path writes them, on the real broker and database."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from lampo.contracts.catalog import PRIVACY_ACKS, PRIVACY_TASKS, REGISTRY_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyTask
from lampo.crypto import new_request_keypair
from lampo.participant import is_streamed, open_result
from lampo.registry.domain import HELD_TABLES
from lampo.registry.privacy import PAGE_ROWS, _plain
from lampo.registry.store import RegistryStore
from lampo.testing import Producer, TopicReader, collect_acks, customer_upserted, eventually

from .helpers import event, new_customer_number, now, subject_in

READINGS = PAGE_ROWS + 500  # more than a page, and more than one part once sealed


async def test_a_heavy_subjects_access_result_streams_in_parts_with_every_reading_as_the_rows_say(registry) -> None:
    customer = new_customer_number()
    points = [f"MUL-{customer}-{m}" for m in range(5)]
    upsert = customer_upserted(customer, 77)
    upsert.data["metering_points"] = points
    whole_second = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)  # str() without microseconds
    async with Producer() as producer:
        await producer.send(REGISTRY_INBOUND, customer, upsert)
        items = []
        for i in range(READINGS):
            day = (date(2020, 1, 1) + timedelta(days=i // len(points))).isoformat()
            reading = {
                "customer_number": customer, "metering_point": points[i % len(points)], "period_start": day,
                "period_end": day, "energy_mwh": f"{i / 1000:.3f}", "annual_forecast_mwh": "12.50" if i % 2 else None,
            }  # fmt: skip
            at = whole_second if i % 3 == 0 else now()
            items.append(
                (customer, event("consumption.reported", reading, source="urn:system:metering", time=at).to_bytes())
            )
        await producer.send_many(REGISTRY_INBOUND, items)
    subject_id = await subject_in(registry, customer)

    async def stored() -> bool:
        async with registry.runtime.pool.acquire() as conn:
            n = await conn.fetchval("SELECT count(*) FROM consumption WHERE subject_id = $1", subject_id)
        return bool(n == READINGS)

    await eventually(stored, timeout=120)

    private, public = new_request_keypair()
    request_id = str(uuid.uuid4())
    task = PrivacyTask.model_validate(
        {
            "request_id": request_id, "task_id": f"{request_id}:registry", "participant": "registry",
            "kind": "access", "subject": {"subject_id": subject_id, "customer_numbers": [customer]},
            "categories": [], "attempt": 1, "deadline": (now() + timedelta(days=30)).isoformat(),
            "result_key": public,
        }
    )  # fmt: skip
    async with TopicReader(PRIVACY_ACKS) as acks, Producer() as producer:
        await producer.send(
            PRIVACY_TASKS, request_id, CloudEvent.new("privacy.task", "urn:lampo:dsar", task), signer="coordinator"
        )
        answer = await collect_acks(acks, task.task_id)

    total = answer[-1]["result_parts"]
    assert total and total > 1 and all(is_streamed(a["result"]) and a["status"] == "done" for a in answer)
    result = open_result(private, {a["result_part"]: a["result"] for a in answer}, total)

    # what the Python path makes of the same rows (store.held, values as json.dumps(default=str))
    _, kind, fields = HELD_TABLES["consumption"]
    async with registry.runtime.pool.acquire() as conn:
        rows = (await RegistryStore(conn, registry.runtime.keys).held(subject_id))["consumption"]
    expected = [
        {
            "customer_number": r["customer_number"],
            "kind": kind,
            "data": {f: _plain(r[f]) for f in fields},
            "source_system": r["source_system"],
            "origin": r["origin"],
            "legal_basis": r["legal_basis"],
            "updated_at": _plain(r["event_time"]),
        }
        for r in rows
    ]
    assert result["consumption"] == expected
    assert {r["data"]["annual_forecast_mwh"] for r in result["consumption"]} == {None, "12.50"}
    assert any("." not in r["updated_at"] for r in result["consumption"])  # whole seconds, as str() writes them
    assert {"basic", "contact"} <= {k for k, v in result.items() if v}
