"""Small helpers of the registry's tests: synthetic events of every inbound type, and reading
back what this test's registry (not another suite's, on the shared broker) did."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from lampo.contracts.catalog import PRIVACY_ACKS, PRIVACY_TASKS
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyAck, PrivacyTask
from lampo.testing import Producer, TopicReader, customer_upserted, eventually, header

# The registry's HTTP callers (LAMPO_API_CLIENTS): the coordinator resolves, the staff service reads,
# the privacy centre (portal) reads the e-mail address it sends one-time codes to.
CLIENTS = {name: secrets.token_urlsafe(16) for name in ("dsar", "staff", "portal")}


def as_caller(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {CLIENTS[name]}"}


def new_customer_number() -> str:
    return str(uuid.uuid4().int % 10**9)


def event(
    kind: str, data: dict[str, Any], *, source: str = "urn:system:crm", time: datetime | None = None
) -> CloudEvent:
    return CloudEvent.new(kind, source, data, time=time)


def organisation_upserted(customer: str, business_id: str = "0402810-7") -> CloudEvent:
    return event(
        "customer.upserted",
        {
            "customer_number": customer,
            "kind": "organisation",
            "source": {"system": "crm", "origin": "authority"},
            "legal_basis": "contract",
            "organisation": {"name": "Testi Oy", "business_id": business_id},
            "contact": {"street": "Yrityskatu 1", "postal_code": "40950", "city": "Muurame", "country": "FI"},
        },
    )


def contact_person_upserted(customer: str, organisation: str, n: int) -> CloudEvent:
    body = json.loads(customer_upserted(customer, n).to_bytes())["data"]
    body["contact_person_for"] = {"customer_number": organisation, "employer": "Testi Oy", "position": "hankinta"}
    return event("customer.upserted", body)


def with_data(base: CloudEvent, **changes: Any) -> bytes:
    """``base`` with fields of its data replaced (dotted paths: ``contact.phone``)."""
    body = json.loads(base.to_bytes())
    for path, value in changes.items():
        target = body["data"]
        *parents, last = path.split(".")
        for part in parents:
            target = target[part]
        target[last] = value
    return json.dumps(body).encode()


def now() -> datetime:
    return datetime.now(UTC)


async def subject_in(registry: Any, customer: str) -> str:
    async def find() -> str | None:
        async with registry.runtime.pool.acquire() as conn:
            found: str | None = await conn.fetchval(
                "SELECT subject_id FROM customers WHERE customer_number = $1", customer
            )
            return found

    found: str = await eventually(find)
    return found


async def ours(registry: Any, notices: TopicReader, customer: str, count: int = 1, **match: Any) -> list[Any]:
    """Notices about ``customer`` from this test's registry (other suites may run a registry on the
    same broker, reading the same inbound topic: their notices carry their own subject ids)."""
    subject_id = await subject_in(registry, customer)

    def mine(r: Any) -> bool:
        body = json.loads(r.value)
        return body["data"]["subject_id"] == subject_id and all(body.get(k) == v for k, v in match.items())

    return await notices.wait_for(mine, count=count)


def once_per_record(records: list[Any]) -> list[Any]:
    """Dead-letter copies, one per source record (another registry on the broker adds its own)."""
    seen: dict[tuple[str | None, str | None], Any] = {}
    for r in records:
        seen.setdefault((header(r, "error.partition"), header(r, "error.offset")), r)
    return list(seen.values())


async def dead_letters(reader: TopicReader, keys: set[bytes], count: int) -> list[Any]:
    """``count`` distinct dead-letter copies of records keyed by ``keys``."""
    wanted = count
    while True:
        records = once_per_record(await reader.wait_for(lambda r: r.key in keys, count=wanted))
        if len(records) >= count:
            return records
        wanted += count - len(records)


def task_for(subject_id: str, customers: list[str], kind: str, **extra: Any) -> PrivacyTask:
    """A task for the registry as the coordinator sends it, under a new request id."""
    request_id = str(uuid.uuid4())
    return PrivacyTask.model_validate(
        {
            "request_id": request_id,
            "task_id": f"{request_id}:registry",
            "participant": "registry",
            "kind": kind,
            "subject": {"subject_id": subject_id, "customer_numbers": customers},
            "categories": extra.pop("categories", []),
            "attempt": 1,
            "deadline": (now() + timedelta(days=30)).isoformat(),
            **extra,
        }
    )


async def run_task(registry: Any, subject_id: str, customers: list[str], kind: str, **extra: Any) -> PrivacyAck:
    """Send a task as the coordinator does and return this registry's answer, as it keeps it with the
    task (registries of other suites on the shared broker answer the same task from their data)."""
    task = task_for(subject_id, customers, kind, **extra)
    request_id = task.request_id

    async def answered() -> Any:
        async with registry.runtime.pool.acquire() as conn:
            return await conn.fetchval("SELECT ack FROM privacy_tasks WHERE task_id = $1", task.task_id)

    async with TopicReader(PRIVACY_ACKS) as acks, Producer() as producer:
        task_event = CloudEvent.new("privacy.task", "urn:lampo:dsar", task)
        await producer.send(PRIVACY_TASKS, request_id, task_event, signer="coordinator")
        ack = PrivacyAck.model_validate(await eventually(answered, timeout=60))
        # ... and that answer is what went out on privacy.acks.v1.
        await acks.wait_for(lambda r: _ack_of(r) == ack)
    return ack


def _ack_of(record: Any) -> PrivacyAck | None:
    """The ack a record carries; None for anything else (other suites' tests send broken ones)."""
    try:
        return PrivacyAck.model_validate(json.loads(record.value)["data"])
    except (ValueError, KeyError, TypeError):
        return None
