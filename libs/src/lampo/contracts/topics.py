"""Topic names (CONTRACTS.md), with no pydantic model behind them: the signing rules and the
settings name topics without building the contracts. :mod:`lampo.contracts.catalog` re-exports
them with the event types each carries."""

from __future__ import annotations

from typing import Final

REGISTRY_INBOUND: Final = "registry.inbound.v1"
REGISTRY_EVENTS: Final = "registry.events.v1"
BILLING_INBOUND: Final = "billing.inbound.v1"
RECORDINGS_INBOUND: Final = "recordings.inbound.v1"
CONSENT_INBOUND: Final = "consent.inbound.v1"
CONSENT_EVENTS: Final = "consent.events.v1"
RETENTION_INBOUND: Final = "retention.inbound.v1"
DSAR_REQUESTS: Final = "dsar.requests.v1"
DSAR_EVENTS: Final = "dsar.events.v1"
PRIVACY_TASKS: Final = "privacy.tasks.v1"
PRIVACY_ACKS: Final = "privacy.acks.v1"

__all__ = [
    "BILLING_INBOUND",
    "CONSENT_EVENTS",
    "CONSENT_INBOUND",
    "DSAR_EVENTS",
    "DSAR_REQUESTS",
    "PRIVACY_ACKS",
    "PRIVACY_TASKS",
    "RECORDINGS_INBOUND",
    "REGISTRY_EVENTS",
    "REGISTRY_INBOUND",
    "RETENTION_INBOUND",
]
