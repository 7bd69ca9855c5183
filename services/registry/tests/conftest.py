from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lampo.contracts.catalog import CONSENT_EVENTS, PRIVACY_TASKS, REGISTRY_INBOUND
from lampo.crypto import new_master_key
from lampo.registry.app import build
from lampo.registry.settings import RegistrySettings
from lampo.service import Runtime
from lampo.testing import drop_database, fast_forward_group, running, signing_settings, unique

from .helpers import CLIENTS


@dataclass
class Registry:
    runtime: Runtime
    spans: InMemorySpanExporter
    settings: RegistrySettings

    @property
    def consumer(self):  # type: ignore[no-untyped-def]
        return self.runtime.consumers[0]


def registry_settings() -> RegistrySettings:
    return RegistrySettings(
        database=unique("test_registry"),
        consumer_group=unique("test-registry"),
        master_key=new_master_key(),
        api_clients=CLIENTS,
        **signing_settings("registry"),
    )


async def fast_forward(group: str) -> None:
    """Start every consumer group of the registry at the current ends of its topics."""
    await fast_forward_group(group, [REGISTRY_INBOUND, CONSENT_EVENTS, PRIVACY_TASKS])


@pytest.fixture
def fresh_settings() -> RegistrySettings:
    """Settings of a registry with its own new database and consumer group."""
    return registry_settings()


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    settings = registry_settings()
    await fast_forward(settings.consumer_group or "")
    spans = InMemorySpanExporter()
    runtime = build(settings, span_processors=[SimpleSpanProcessor(spans)])
    async with running(runtime.app):
        yield Registry(runtime, spans, settings)
    await drop_database(settings.database or "")
