"""Composition root of the staff service: ``create_app()`` for ``faststream run --factory``.

Start-up is refused (``ConfigurationRefused``) before anything connects when the roles file is
invalid or a configured recipient or processor lies outside the EU/EEA (§9).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from faststream.asgi import AsgiFastStream
from opentelemetry.sdk.trace import SpanProcessor

from lampo.clock import Clock
from lampo.contracts.catalog import DSAR_REQUESTS
from lampo.contracts.dsar import DsarApproved, DsarDenied
from lampo.http_auth import credential_headers
from lampo.messaging.asyncapi import sends
from lampo.messaging.topics import STAFF_AUDIT_HEADS
from lampo.service import Runtime, serve
from lampo.staff.access import Access
from lampo.staff.api import create_api
from lampo.staff.approvals import Desk
from lampo.staff.audit_head import HEAD_TYPE, publish
from lampo.staff.console import PREFIXES, create_console
from lampo.staff.customer_view import Clients, Customers
from lampo.staff.domain import AuditHead, Role, check_recipients, datamap_recipients, load_roles
from lampo.staff.errors import ConfigurationRefused
from lampo.staff.metrics import register_metrics
from lampo.staff.settings import StaffSettings

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


@dataclass
class Staff:
    runtime: Runtime
    access: Access
    roles: dict[str, Role]
    customers: Customers


def check_configuration(settings: StaffSettings) -> dict[str, Role]:
    """The roles, once the configuration passed every start-up check."""
    recipients = [(r.name, r.country, "LAMPO_RECIPIENTS") for r in settings.recipients]
    if settings.datamap_file is not None and settings.datamap_file.exists():
        recipients += datamap_recipients(settings.datamap_file)
    check_recipients(recipients)
    return load_roles(settings.roles_file)


def build(
    settings: StaffSettings | None = None,
    *,
    span_processors: Sequence[SpanProcessor] = (),
    clock: Clock | None = None,
    registry_transport: httpx.AsyncBaseTransport | None = None,
    dsar_transport: httpx.AsyncBaseTransport | None = None,
    store_transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> Staff:
    """The staff service. The transports let a test put the registry's, the DSAR service's and the
    stores' (``billing``, ``recordings``, ``consent``) real ASGI apps behind the clients instead of
    a network port."""
    settings = settings or StaffSettings()
    roles = check_configuration(settings)
    # The staff service calls the registry and the coordinator as itself (LAMPO_API_TOKEN), for its people.
    timeout, credential = httpx.Timeout(settings.upstream_timeout_s), credential_headers(settings)
    registry = httpx.AsyncClient(
        base_url=settings.registry_url, transport=registry_transport, timeout=timeout, headers=credential
    )
    dsar = httpx.AsyncClient(base_url=settings.dsar_url, transport=dsar_transport, timeout=timeout, headers=credential)
    stores = {
        name: httpx.AsyncClient(
            base_url=url, transport=(store_transports or {}).get(name), timeout=timeout, headers=credential
        )
        for name, url in (
            ("billing", settings.billing_url),
            ("recordings", settings.recordings_url),
            ("consent", settings.consent_url),
        )
    }
    clients = Clients(registry=registry, **stores)
    holder: list[Access] = []
    customers = Customers(lambda: holder[0], clients)
    desk = Desk(lambda: holder[0], dsar)
    pages = create_console(lambda: holder[0], desk, registry, settings)
    pages.state.customers = customers  # the customer pages' service (console/customers.py)
    runtime = Runtime(
        settings,
        migrations=MIGRATIONS,
        span_processors=span_processors,
        clock=clock,
        mounts=[
            ("/v1", create_api(lambda: holder[0], customers, desk)),
            # The staff console's pages (lampo.staff.console), their static files and language switch.
            *((prefix, pages) for prefix in PREFIXES),
        ],
    )
    # Approvals and denials through the outbox (approvals.py); the audit chain's head, sent by
    # ``publish_head`` below straight to its compacted internal topic.
    sends(runtime, DSAR_REQUESTS, {"dsar.approved": DsarApproved, "dsar.denied": DsarDenied}, key="request_id")
    sends(
        runtime, STAFF_AUDIT_HEADS, {HEAD_TYPE: AuditHead}, key="audit_head_key (LAMPO_AUDIT_HEAD_KEY), a constant",
        content_type="application/json",
    )  # fmt: skip
    access = Access(settings, roles, lambda: runtime.pool, runtime.clock)
    holder.append(access)
    published: list[int] = []
    published_heads: list[AuditHead] = []

    async def publish_head() -> None:
        # The chain's head outside the database, whenever it moved (the key is a constant).
        head = await access.audit_head()
        if head is not None and (not published or published[-1] != head.seq):
            await publish(runtime.send, settings, head)
            published[:] = [head.seq]
            published_heads[:] = [head]

    runtime.every(
        "audit-head", publish_head, interval_s=settings.audit_head_interval_s,
        first_delay_s=min(5.0, settings.audit_head_interval_s),
    )  # fmt: skip

    register_metrics(runtime, access, settings, lambda: published_heads[-1] if published_heads else None)

    async def close_clients() -> None:
        await clients.aclose()
        await dsar.aclose()

    runtime.app.on_shutdown(close_clients)
    return Staff(runtime, access, roles, customers)


def create_app() -> AsgiFastStream:
    return build().runtime.app


def main() -> None:
    try:
        staff = build()
    except ConfigurationRefused as e:
        print(f"lampo-staff: {e.detail}", file=sys.stderr)
        raise SystemExit(2) from e
    serve(staff.runtime)
