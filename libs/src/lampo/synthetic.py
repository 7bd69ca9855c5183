"""What other company systems publish and read, with synthetic data only: one customer with data
in every store (identity code in the 900-999 test range, e-mail at example.fi), DSAR submission
and approval, and waiting for a request's outcome. Used by the system tests and by `make demo`."""

from __future__ import annotations

import base64
import json
import random
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka.structs import RecordMetadata

from lampo.clock import FINNISH_TIME
from lampo.contracts.catalog import (
    BILLING_INBOUND,
    CONSENT_INBOUND,
    DSAR_EVENTS,
    DSAR_REQUESTS,
    RECORDINGS_INBOUND,
    REGISTRY_INBOUND,
)
from lampo.contracts.envelope import CloudEvent
from lampo.testing import (
    Producer,
    TopicReader,
    committed_past,
    customer_upserted,
    synthetic_identity_code,
)


@dataclass
class Customer:
    number: str
    n: int
    audio: bytes
    recording_id: str
    invoice_number: str

    @property
    def identity_code(self) -> str:
        return synthetic_identity_code(self.n)

    @property
    def personal_strings(self) -> list[str]:
        """What must be gone after an erasure: identity code, names, e-mail, phone, street."""
        upsert = json.loads(customer_upserted(self.number, self.n).to_bytes())["data"]
        person, contact = upsert["person"], upsert["contact"]
        return [
            person["personal_identity_code"],
            person["first_names"],
            person["last_name"],
            contact["email"],
            contact["phone"],
            contact["street"],
        ]


def new_customer() -> Customer:
    n = random.randint(10_000, 30_000)  # noqa: S311 - synthetic test data, not a secret
    return Customer(
        number=f"sys{uuid.uuid4().hex[:8]}",
        n=n,
        audio=b"RIFF" + random.randbytes(40_000),  # noqa: S311 - stand-in audio
        recording_id=f"rec-{uuid.uuid4().hex[:8]}",
        invoice_number=f"INV-{uuid.uuid4().hex[:8]}",
    )


async def processed(url: str, topic: str) -> int:
    """The running service's processed-records counter for a topic, from its /metrics."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{url}/metrics", timeout=5)).text
    total = 0
    for line in text.splitlines():
        if line.startswith("lampo_consumer_processed") and f'topic="{topic}"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


async def group_of(url: str, topic: str) -> str:
    """The consumer group through which the service at ``url`` reads ``topic`` (from its /metrics):
    every instance of the service shares it."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{url}/metrics", timeout=5)).text
    found = re.search(rf'group="([^"]+\.{re.escape(topic)})"', text)  # <base>.<topic>, lampo.messaging.topics
    if not found:
        raise LookupError(f"{url} reads no {topic}")
    return found.group(1)


async def seed(urls: dict[str, str], customer: Customer) -> None:
    """The customer in every store, as the CRM, billing, telephony and portal would send it;
    returns once each store's consumer group (found through ``urls``: service name -> base URL of
    one instance) has committed past the record, whichever of its instances read it."""
    now = datetime.now(UTC)
    groups = {name: await group_of(urls[name], topic) for name, topic in STORES.items()}
    async with Producer() as systems:
        sent: dict[str, RecordMetadata] = {}
        sent["registry"] = await systems.send(
            REGISTRY_INBOUND, customer.number, customer_upserted(customer.number, customer.n)
        )
        sent["billing"] = await systems.send(
            BILLING_INBOUND,
            customer.number,
            CloudEvent.new(
                "invoice.issued",
                "urn:system:billing",
                {
                    "customer_number": customer.number,
                    "invoice_number": customer.invoice_number,
                    "issued_at": now,
                    "due_date": (now + timedelta(days=14)).date(),
                    "total_eur": "120.50",
                    "lines": [{"text": "Kaukolämpö 11/2026", "amount_eur": "120.50"}],
                },
            ),
        )
        sent["recordings"] = await systems.send(
            RECORDINGS_INBOUND,
            customer.number,
            CloudEvent.new(
                "call.recorded",
                "urn:system:telephony",
                {
                    "customer_number": customer.number,
                    "recording_id": customer.recording_id,
                    "started_at": now,
                    "duration_s": 42,
                    "media_type": "audio/wav",
                    "audio_base64": base64.b64encode(customer.audio).decode(),
                },
            ),
        )
        sent["consent"] = await systems.send(
            CONSENT_INBOUND,
            customer.number,
            CloudEvent.new(
                "consent.given",
                "urn:system:portal",
                {"customer_number": customer.number, "purpose": "profiling", "channel": "portal", "at": now},
            ),
        )

    await committed_past({groups[name]: sent[name] for name in STORES}, timeout=60)


STORES = {
    "registry": REGISTRY_INBOUND,
    "billing": BILLING_INBOUND,
    "recordings": RECORDINGS_INBOUND,
    "consent": CONSENT_INBOUND,
}


def submitted(
    kind: str, customer_number: str, *, verified: bool = True, request_id: str | None = None, **extra: Any
) -> CloudEvent:
    """A portal's ``dsar.submitted``; ``extra`` adds what the kind needs (``corrections``,
    ``scope``, ``lift``, ``categories``)."""
    data: dict[str, Any] = {
        "request_id": request_id or str(uuid.uuid4()),
        "kind": kind,
        "identifiers": {"customer_number": customer_number},
        "verification": (
            {"method": "strong_electronic", "verified_by": "portal", "verified_at": datetime.now(UTC)}
            if verified
            else None
        ),
        "received_at": datetime.now(UTC),
        "channel": "portal",
        **extra,
    }
    return CloudEvent.new("dsar.submitted", "urn:system:portal", data)


async def submit(event: CloudEvent, *, traceparent: str | None = None) -> str:
    request_id = str(event.data["request_id"])
    async with Producer() as portal:
        await portal.send(DSAR_REQUESTS, request_id, event, traceparent=traceparent)
    return request_id


async def approve(request_id: str, by: str = "managing.director", *, staff_key: str | None = None) -> None:
    """dsar.approved as the staff service sends it: signed with staff's key (``staff_key``, base64;
    default: the test key of ``lampo.testing``, which the system tests' suite trusts)."""
    from lampo.signing import Signer
    from lampo.testing import signing_key_for

    event = CloudEvent.new(
        "dsar.approved",
        "urn:system:staff",
        {"request_id": request_id, "approved_by": by, "approved_at": datetime.now(UTC)},
    )
    value = event.to_bytes()
    headers = Signer("staff", staff_key or signing_key_for("staff")).headers(value)
    async with Producer() as staff:
        await staff.send(DSAR_REQUESTS, request_id, value, headers=headers)


async def outcome(reader: TopicReader, request_id: str, *types: str, timeout: float = 90) -> dict[str, Any]:
    """The first event of the given types for the request on dsar.events.v1."""
    assert reader.topics == (DSAR_EVENTS,)
    [record] = (
        await reader.wait_for(
            lambda r: (
                json.loads(r.value)["data"].get("request_id") == request_id and json.loads(r.value)["type"] in types
            ),
            timeout=timeout,
        )
    )[:1]
    body: dict[str, Any] = json.loads(record.value)
    return body


def until_year(value: str) -> int:
    match = re.match(r"(\d{4})-", value)
    assert match, value
    return int(match.group(1))


def years_from_now(years: int) -> int:
    """This year in Finland (statutory periods end with a Finnish financial year) plus ``years``:
    in the first hours of 1 January in Finland it is still the old year in UTC."""
    return datetime.now(FINNISH_TIME).year + years
