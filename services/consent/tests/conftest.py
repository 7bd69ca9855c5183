from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lampo.consent.app import build
from lampo.consent.settings import ConsentSettings
from lampo.contracts.catalog import CONSENT_INBOUND, PRIVACY_TASKS
from lampo.contracts.envelope import CloudEvent
from lampo.crypto import new_master_key
from lampo.messaging.consumer import ReliableConsumer
from lampo.service import Runtime
from lampo.testing import drop_database, fast_forward_group, running, signing_settings, unique

T0 = datetime(2025, 11, 28, 10, 0, tzinfo=UTC)  # in the past: erasure and suppressions use the real clock


@dataclass
class Consent:
    runtime: Runtime
    spans: InMemorySpanExporter
    settings: ConsentSettings

    @property
    def inbound(self) -> ReliableConsumer:
        return self.runtime.consumers[0]

    @property
    def tasks(self) -> ReliableConsumer:
        return self.runtime.consumers[1]


def consent_settings(**overrides: Any) -> ConsentSettings:
    # Its own source too: another consent instance (a developer's `make up`) may be reading the
    # same inbound topic and publishing on consent.events.v1; tests read only this one's records.
    return ConsentSettings(
        database=unique("test_consent"),
        consumer_group=unique("test-consent"),
        master_key=new_master_key(),
        **signing_settings("consent"),
        event_source=unique("urn:test:consent"),
        **overrides,
    )


@asynccontextmanager
async def running_consent(**overrides: Any) -> AsyncIterator[Consent]:
    """A consent service in this process on a new database; ``overrides`` are settings."""
    settings = consent_settings(**overrides)
    await fast_forward_group(settings.consumer_group or "", [CONSENT_INBOUND, PRIVACY_TASKS])
    spans = InMemorySpanExporter()
    runtime = build(settings, span_processors=[SimpleSpanProcessor(spans)])
    async with running(runtime.app):
        yield Consent(runtime, spans, settings)
    await drop_database(settings.database or "")


@pytest.fixture
async def consent() -> AsyncIterator[Consent]:
    async with running_consent() as service:
        yield service


@pytest.fixture
def start_consent() -> Callable[..., AbstractAsyncContextManager[Consent]]:
    """:func:`running_consent`, for tests that need settings of their own."""
    return running_consent


class Events:
    """Inbound events as the portal and CRM publish them; ``minutes`` after a fixed T0."""

    @staticmethod
    def given(customer: str, purpose: str, minutes: int = 0, *, channel: str = "portal") -> CloudEvent:
        data = {
            "customer_number": customer,
            "purpose": purpose,
            "channel": channel,
            "at": T0 + timedelta(minutes=minutes),
        }
        return CloudEvent.new("consent.given", "urn:system:portal", data)

    @staticmethod
    def withdrawn(customer: str, purpose: str, minutes: int = 0, *, channel: str = "portal") -> CloudEvent:
        data = {
            "customer_number": customer,
            "purpose": purpose,
            "channel": channel,
            "at": T0 + timedelta(minutes=minutes),
        }
        return CloudEvent.new("consent.withdrawn", "urn:system:portal", data)

    @staticmethod
    def objection(customer: str, scope: str, minutes: int = 0) -> CloudEvent:
        data = {"customer_number": customer, "scope": scope, "at": T0 + timedelta(minutes=minutes)}
        return CloudEvent.new("objection.filed", "urn:system:crm", data)

    @staticmethod
    def data_of(record: Any) -> dict[str, Any]:
        return CloudEvent.from_bytes(record.value).data


@pytest.fixture
def ev() -> Events:
    return Events()


@pytest.fixture
def customer() -> str:
    """A fresh synthetic customer number."""
    return str(uuid.uuid4().int % 10**9)
