"""Fixtures of the staff tests; helpers live in ``staff_support`` (importable by name)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from staff_support import CALLERS, ROLES, STAFF_TOKEN, START, Suite, password, seed, staff_settings

from lampo.clock import ManualClock
from lampo.contracts.catalog import CONSENT_EVENTS, DSAR_REQUESTS, PRIVACY_ACKS, PRIVACY_TASKS, REGISTRY_INBOUND
from lampo.crypto import new_master_key
from lampo.dsar.app import build as build_dsar
from lampo.dsar.settings import DsarSettings
from lampo.messaging.topics import STAFF_AUDIT_HEADS, TOPICS, provision
from lampo.registry.api import subjects_api
from lampo.registry.app import build as build_registry
from lampo.registry.settings import RegistrySettings
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
    await provision(BOOTSTRAP, specs=[t for t in TOPICS if t.name == STAFF_AUDIT_HEADS])
    await fast_forward_group(registry_settings.consumer_group or "", [REGISTRY_INBOUND, CONSENT_EVENTS, PRIVACY_TASKS])
    await fast_forward_group(dsar_settings.consumer_group or "", [DSAR_REQUESTS, PRIVACY_ACKS])
    registry = build_registry(registry_settings)
    dsar = build_dsar(dsar_settings)  # its checker resolves requests and sends their tasks
    clock = ManualClock(START)
    settings = staff_settings()
    staff = build(
        settings,
        clock=clock,
        # The registry as the lead wires it: its internal read API over its own runtime.
        registry_transport=httpx.ASGITransport(app=subjects_api(registry)),
        dsar_transport=httpx.ASGITransport(app=dsar.runtime.app),
    )
    customer = str(uuid.uuid4().int % 10**9)
    try:
        async with running(registry.app), running(dsar.runtime.app), running(staff.runtime.app):
            await seed(customer, 4242)
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
                          clock, settings, customer)  # fmt: skip
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
        for db in (registry_settings.database, dsar_settings.database, settings.database):
            await drop_database(db or "")
