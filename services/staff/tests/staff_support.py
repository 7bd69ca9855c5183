"""Helpers of the staff tests (importable by name). One running suite for the staff tests: the real registry (with its internal read API), the
real DSAR coordinator and the staff service, each on its own database and consumer groups, over
the real broker and PostgreSQL. The staff service reaches the other two through their ASGI apps."""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from lampo.clock import ManualClock
from lampo.contracts.catalog import BILLING_INBOUND, CONSENT_INBOUND, RECORDINGS_INBOUND, REGISTRY_INBOUND
from lampo.contracts.envelope import CloudEvent
from lampo.crypto import new_master_key
from lampo.staff.app import Staff
from lampo.staff.settings import StaffSettings
from lampo.testing import Producer, customer_upserted, signing_settings, unique

STAFF_TOKEN = secrets.token_urlsafe(24)  # the staff service's own credential (LAMPO_API_TOKEN)
# What the registry and the coordinator answer (LAMPO_API_CLIENTS): the staff service, and the
# portal (a caller none of the staff service's calls is made as).
CALLERS = {"staff": STAFF_TOKEN, "portal": secrets.token_urlsafe(24)}
ROLES = ("administrator", "customer_service", "billing_clerk", "data_protection_officer", "auditor")
START = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def password() -> str:
    return f"Synteettinen-{uuid.uuid4().hex[:10]}-Kevät"


def staff_settings(**overrides: object) -> StaffSettings:
    return StaffSettings(
        database=unique("test_staff"),
        consumer_group=unique("test-staff"),
        master_key=new_master_key(),
        api_token=STAFF_TOKEN,
        # Every login of the module's tests comes from one address: the throttle is tested apart.
        address_throttle_after=10_000,
        audit_head_key=unique("test-staff-audit"),
        audit_head_interval_s=2.0,
        audit_verify_interval_s=1.0,  # the chain check on /metrics, soon enough for a test
        **{**signing_settings("staff"), **overrides},  # type: ignore[arg-type]
    )


@dataclass
class Suite:
    staff: Staff
    client: httpx.AsyncClient
    clock: ManualClock
    settings: StaffSettings
    customer: str
    users: dict[str, tuple[str, str]] = field(default_factory=dict)  # role -> (username, password)
    recording_id: str = ""  # the seeded customer's call recording (seed_stores)
    store_calls: dict[str, list[str]] = field(default_factory=dict)  # store -> paths asked (Recorded)

    async def token(self, role: str) -> str:
        username, secret = self.users[role]
        response = await self.client.post("/v1/login", json={"username": username, "password": secret})
        assert response.status_code == 200, response.text
        token = str(response.json()["token"])
        # §8: the account's confidentiality commitment, before it may see any customer data.
        committed = await self.client.post(
            "/v1/me/confidentiality",
            json={"text_version": self.settings.confidentiality_text_version},
            headers={"authorization": f"Bearer {token}"},
        )
        assert committed.status_code == 200, committed.text
        return token

    async def as_role(self, role: str) -> dict[str, str]:
        return {"authorization": f"Bearer {await self.token(role)}"}


async def seed(customer: str, n: int) -> None:
    point = f"MUL-{n:06d}"
    async with Producer() as producer:
        await producer.send(REGISTRY_INBOUND, customer, customer_upserted(customer, n))
        for kind, data in (
            ("contract.updated", {"contract_id": "C-1", "product": "kaukolampo", "status": "active",
                                  "valid_from": "2024-01-01", "metering_point": point}),
            ("consumption.reported", {"metering_point": point, "period_start": "2025-01-01",
                                      "period_end": "2025-01-31", "energy_mwh": "2.150", "annual_forecast_mwh": "14.0"}),
        ):  # fmt: skip
            event = CloudEvent.new(kind, "urn:system:crm", {"customer_number": customer, **data})
            await producer.send(REGISTRY_INBOUND, customer, event)


# What the other stores hold on the seeded customer: an invoice (billing), a call recording
# (recordings) and a consent (the consent ledger).
INVOICE_LINE = "Kaukolämpö 11/2026"
AUDIO = b"RIFF" + bytes(range(256)) * 8


async def seed_stores(customer: str) -> str:
    """Send the stores' events for ``customer``; returns the recording's id."""
    recording_id = unique("rec")
    async with Producer() as producer:
        await producer.send(BILLING_INBOUND, customer, CloudEvent.new("invoice.issued", "urn:system:billing", {
            "customer_number": customer, "invoice_number": f"INV-{customer}-1", "issued_at": "2026-11-01T08:00:00Z",
            "due_date": "2026-11-21", "total_eur": "120.50", "lines": [{"text": INVOICE_LINE, "amount_eur": "120.50"}],
        }))  # fmt: skip
        await producer.send(RECORDINGS_INBOUND, customer, CloudEvent.new("call.recorded", "urn:system:telephony", {
            "customer_number": customer, "recording_id": recording_id, "started_at": "2026-11-20T09:15:00Z",
            "duration_s": 4.0, "media_type": "audio/wav", "audio_base64": base64.b64encode(AUDIO).decode(),
        }))  # fmt: skip
        await producer.send(CONSENT_INBOUND, customer, CloudEvent.new("consent.given", "urn:system:portal", {
            "customer_number": customer, "purpose": "profiling", "channel": "portal", "at": "2026-11-01T08:00:00Z",
        }))  # fmt: skip
    return recording_id


class Recorded(httpx.AsyncBaseTransport):
    """A transport that notes the path of every request before passing it on."""

    def __init__(self, inner: httpx.AsyncBaseTransport, calls: list[str]) -> None:
        self.inner = inner
        self.calls = calls

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.url.path)
        return await self.inner.handle_async_request(request)
