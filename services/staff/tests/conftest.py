"""Fixtures of the staff tests; helpers live in ``staff_support`` (importable by name)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from staff_support import (
    CALLERS,
    ROLES,
    STAFF_TOKEN,
    START,
    Recorded,
    Suite,
    password,
    seed,
    seed_stores,
    staff_settings,
)

from lampo.billing.app import build as build_billing
from lampo.billing.settings import BillingSettings
from lampo.clock import ManualClock
from lampo.consent.app import build as build_consent
from lampo.consent.settings import ConsentSettings
from lampo.contracts.catalog import (
    BILLING_INBOUND,
    CONSENT_EVENTS,
    CONSENT_INBOUND,
    DSAR_REQUESTS,
    PRIVACY_ACKS,
    PRIVACY_TASKS,
    RECORDINGS_INBOUND,
    REGISTRY_INBOUND,
)
from lampo.crypto import new_master_key
from lampo.dsar.app import build as build_dsar
from lampo.dsar.settings import DsarSettings
from lampo.messaging.topics import STAFF_AUDIT_HEADS, TOPICS, provision
from lampo.recordings.app import build as build_recordings
from lampo.recordings.settings import RecordingsSettings
from lampo.registry.api import subjects_api
from lampo.registry.app import build as build_registry
from lampo.registry.settings import RegistrySettings
from lampo.service import Runtime
from lampo.staff.app import build
from lampo.testing import (
    BOOTSTRAP,
    drop_database,
    eventually,
    fast_forward_group,
    running,
    signing_settings,
    unique,
)


@pytest.fixture(scope="module")
async def suite() -> AsyncIterator[Suite]:
    registry_settings = RegistrySettings(
        database=unique("test_registry"), consumer_group=unique("test-registry"),
        master_key=new_master_key(), api_clients=CALLERS, **signing_settings("registry"),
    )  # fmt: skip
    dsar_settings = DsarSettings(
        database=unique("test_dsar"), consumer_group=unique("test-dsar"), master_key=new_master_key(),
        identity_resolver="customer_number", api_clients=CALLERS, participants=["registry"],
        **signing_settings("coordinator"),
    )  # fmt: skip
    # The stores the staff service reads a customer from (issue 18), each answering the staff
    # service and acting only on privacy tasks addressed to its own (test) name.
    billing_settings = BillingSettings(
        database=unique("test_billing"), consumer_group=unique("test-billing"), master_key=new_master_key(),
        api_clients=CALLERS, participant_name=(b := unique("billing")), signer=b, purge_interval_s=0,
        **signing_settings(b),
    )  # fmt: skip
    recordings_settings = RecordingsSettings(
        database=unique("test_recordings"), consumer_group=unique("test-recordings"), master_key=new_master_key(),
        api_clients=CALLERS, participant_name=(r := unique("recordings")), signer=r, **signing_settings(r),
    )  # fmt: skip
    consent_settings = ConsentSettings(
        database=unique("test_consent"), consumer_group=unique("test-consent"), master_key=new_master_key(),
        api_clients=CALLERS, event_source=unique("urn:test:consent"), **signing_settings("consent"),
    )  # fmt: skip
    stores = [billing_settings, recordings_settings, consent_settings]
    for store_settings, inbound in zip(stores, (BILLING_INBOUND, RECORDINGS_INBOUND, CONSENT_INBOUND), strict=True):
        await fast_forward_group(store_settings.consumer_group or "", [inbound, PRIVACY_TASKS])
    billing, recordings, consent = (
        build_billing(billing_settings),
        build_recordings(recordings_settings),
        build_consent(consent_settings),
    )
    await provision(BOOTSTRAP, specs=[t for t in TOPICS if t.name == STAFF_AUDIT_HEADS])
    await fast_forward_group(registry_settings.consumer_group or "", [REGISTRY_INBOUND, CONSENT_EVENTS, PRIVACY_TASKS])
    await fast_forward_group(dsar_settings.consumer_group or "", [DSAR_REQUESTS, PRIVACY_ACKS])
    registry = build_registry(registry_settings)
    dsar = build_dsar(dsar_settings)  # its checker resolves requests and sends their tasks
    clock = ManualClock(START)
    calls: dict[str, list[str]] = {"billing": [], "recordings": [], "consent": []}
    settings = staff_settings()
    staff = build(
        settings,
        clock=clock,
        # The registry as the lead wires it: its internal read API over its own runtime.
        registry_transport=httpx.ASGITransport(app=subjects_api(registry)),
        dsar_transport=httpx.ASGITransport(app=dsar.runtime.app),
        store_transports={  # each call recorded: a test checks which stores were asked
            "billing": Recorded(httpx.ASGITransport(app=billing.app), calls["billing"]),
            "recordings": Recorded(httpx.ASGITransport(app=recordings.app), calls["recordings"]),
            "consent": Recorded(httpx.ASGITransport(app=consent.app), calls["consent"]),
        },
    )
    customer = str(uuid.uuid4().int % 10**9)
    try:
        async with (
            running(registry.app), running(dsar.runtime.app), running(billing.app), running(recordings.app),
            running(consent.app), running(staff.runtime.app),
        ):  # fmt: skip
            await seed(customer, 4242)
            recording_id = await seed_stores(customer)
            for store, table in ((billing, "items"), (recordings, "recordings"), (consent, "ledger")):
                await eventually(lambda s=store, t=table: _holds(s, t, customer), timeout=30)
            probe = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=subjects_api(registry)), base_url="http://registry"
            )

            async def seeded() -> bool:
                r = await probe.get(f"/v1/subjects/{customer}", headers={"authorization": f"Bearer {STAFF_TOKEN}"})
                return (
                    r.status_code == 200
                    and bool(r.json()["categories"]["consumption"])
                    and bool(r.json()["categories"]["customer_relationship"])
                )

            await eventually(seeded)
            await probe.aclose()
            suite = Suite(staff, httpx.AsyncClient(transport=httpx.ASGITransport(app=staff.runtime.app), base_url="http://staff"),
                          clock, settings, customer, recording_id=recording_id, store_calls=calls)  # fmt: skip
            admin = ("root.admin", password())
            await staff.access.create_user("test", admin[0], admin[1], ["administrator"], first_admin=True)
            suite.users["administrator"] = admin
            headers = await suite.as_role("administrator")
            for role in ROLES[1:]:
                username, secret = f"{role.replace('_', '.')}.user", password()
                r = await suite.client.post(
                    "/v1/users", json={"username": username, "password": secret, "roles": [role]}, headers=headers
                )
                assert r.status_code == 201, r.text
                suite.users[role] = (username, secret)
            yield suite
            await suite.client.aclose()
    finally:
        for db in (
            registry_settings.database,
            dsar_settings.database,
            settings.database,
            *(s.database for s in stores),
        ):
            await drop_database(db or "")


async def _holds(runtime: Runtime, table: str, customer: str) -> bool:
    async with runtime.pool.acquire() as conn:
        return bool(await conn.fetchval(f"SELECT count(*) > 0 FROM {table} WHERE customer_number = $1", customer))
