"""Fixtures of the portal tests; helpers live in ``portal_support`` (importable by name)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from portal_support import CALLERS, PORTAL_TOKEN, STAFF_TOKEN, Env

from lampo.contracts.catalog import (
    CONSENT_EVENTS,
    DSAR_EVENTS,
    DSAR_REQUESTS,
    PRIVACY_ACKS,
    PRIVACY_TASKS,
    REGISTRY_INBOUND,
)
from lampo.crypto import new_master_key
from lampo.dsar.app import build as build_dsar
from lampo.dsar.settings import DsarSettings
from lampo.mail.catcher import catching
from lampo.portal.app import build
from lampo.portal.settings import PortalSettings
from lampo.registry.app import build as build_registry
from lampo.registry.settings import RegistrySettings
from lampo.testing import drop_database, fast_forward_group, running, signing_settings, unique


def portal_settings(**overrides: object) -> PortalSettings:
    return PortalSettings(
        database=unique("test_portal"), consumer_group=unique("test-portal"), master_key=new_master_key(),
        api_token=PORTAL_TOKEN, portal_url="http://portal.test", mail_interval_s=0.2, **overrides,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.fixture(scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    os.environ["LAMPO_WEB_INSECURE_COOKIES"] = "1"  # the test client speaks plain http
    mail_dir = tmp_path_factory.mktemp("mail")
    registry_settings = RegistrySettings(
        database=unique("test_registry"), consumer_group=unique("test-registry"), master_key=new_master_key(),
        api_clients=CALLERS, **signing_settings("registry"),
    )  # fmt: skip
    dsar_settings = DsarSettings(
        database=unique("test_dsar"), consumer_group=unique("test-dsar"), master_key=new_master_key(),
        identity_resolver="customer_number", api_clients=CALLERS, participants=["registry"],
        check_interval_s=0.5, **signing_settings("coordinator", "registry"),
    )  # fmt: skip
    await fast_forward_group(registry_settings.consumer_group or "", [REGISTRY_INBOUND, CONSENT_EVENTS, PRIVACY_TASKS])
    await fast_forward_group(dsar_settings.consumer_group or "", [DSAR_REQUESTS, PRIVACY_ACKS])
    registry = build_registry(registry_settings)
    dsar = build_dsar(dsar_settings)
    async with catching(mail_dir) as smtp_port:
        settings = portal_settings(smtp_port=smtp_port, strong_id_standin=True)
        await fast_forward_group(settings.consumer_group or "", [DSAR_EVENTS])
        portal = build(
            settings,
            registry_transport=httpx.ASGITransport(app=registry.app),
            dsar_transport=httpx.ASGITransport(app=dsar.runtime.app),
        )
        try:
            async with running(registry.app), running(dsar.runtime.app), running(portal.runtime.app):
                yield Env(portal, registry.app, dsar.runtime.app, mail_dir, dsar.runtime)
        finally:
            for database in (registry_settings.database, dsar_settings.database, settings.database):
                await drop_database(database or "")


__all__ = ["STAFF_TOKEN", "env"]
