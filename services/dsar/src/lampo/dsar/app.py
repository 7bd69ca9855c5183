"""Composition root of the DSAR coordinator: ``create_app()`` for ``faststream run --factory``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faststream.asgi import AsgiFastStream
from opentelemetry.sdk.trace import SpanProcessor

from lampo.clock import Clock
from lampo.contracts.catalog import DSAR_EVENTS, PRIVACY_ACKS, PRIVACY_TASKS
from lampo.crypto import KeyRing
from lampo.dsar import metrics as dsar_metrics
from lampo.dsar import packages
from lampo.dsar.api import create_api
from lampo.dsar.coordinator import Coordinator
from lampo.dsar.handlers import HoldsConsumer, RequestsConsumer, acks_handler, consume_requests
from lampo.dsar.resolver import (
    CustomerNumberResolver,
    IdentityResolver,
    RegistryResolver,
    StoresResolver,
    store_subject_id,
    stores_from,
)
from lampo.dsar.settings import DsarSettings
from lampo.http_auth import Callers
from lampo.messaging.asyncapi import sends
from lampo.messaging.consumer import ConsumerOptions, ReliableConsumer
from lampo.participant import ack_policy
from lampo.service import Runtime, serve

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"
ACKS_FETCH_BYTES = 8 * 1024 * 1024
log = logging.getLogger("lampo.dsar")


@dataclass
class Dsar:
    runtime: Runtime
    coordinator: Coordinator
    requests: RequestsConsumer
    acks: ReliableConsumer
    holds: HoldsConsumer


def make_resolver(settings: DsarSettings, keys: KeyRing) -> IdentityResolver:
    if settings.identity_resolver == "customer_number":
        return CustomerNumberResolver()
    token = settings.api_token.get_secret_value() if settings.api_token else ""  # the coordinator's own
    registry = RegistryResolver(settings.registry_url, timeout_s=settings.resolve_timeout_s, token=token)
    if not settings.store_resolve_urls:
        return registry
    stores = stores_from(settings.store_resolve_urls, timeout_s=settings.resolve_timeout_s, token=token)
    return StoresResolver(registry, stores, lambda number: store_subject_id(keys.blind_index, number))


def build(
    settings: DsarSettings | None = None,
    *,
    span_processors: Sequence[SpanProcessor] = (),
    clock: Clock | None = None,
    resolver: IdentityResolver | None = None,
    run_checker: bool = True,
) -> Dsar:
    """``run_checker=False`` leaves the periodic checker off (tests then call ``coordinator.tick()``)."""
    settings = settings or DsarSettings()
    state: dict[str, Any] = {}
    runtime = Runtime(
        settings,
        migrations=MIGRATIONS,
        span_processors=span_processors,
        clock=clock,
        mounts=[("/v1", create_api(state))],
    )
    coordinator = Coordinator(
        settings,
        keys=runtime.keys,
        clock=runtime.clock,
        tracer=runtime.tracer,
        resolver=resolver or make_resolver(settings, runtime.keys),
        pool=lambda: runtime.pool,
    )
    state.update(coordinator=coordinator, pool=lambda: runtime.pool, callers=Callers.of(settings))
    coordinator.on_completed = dsar_metrics.register(runtime, lambda: runtime.pool)
    requests = consume_requests(runtime, coordinator)
    # An access result's parts (up to 1 MiB each) share their request's partition: a poll takes
    # several at once rather than one per fetch.
    acks = runtime.consume(
        PRIVACY_ACKS,
        acks_handler(coordinator),
        options=ConsumerOptions(max_records=settings.consumer_batch, max_partition_fetch_bytes=ACKS_FETCH_BYTES),
        verify=ack_policy(runtime.trusted),  # counted only when signed by the participant named
    )
    # Fail closed, and say so at start-up (lampo.signing, docs/SECURITY.md).
    untrusted = [p for p in (*settings.participants, "staff") if not runtime.trusted.knows(p)]
    if untrusted:
        log.error("dsar: no trusted key for %s: their acks or approvals are refused", ", ".join(untrusted))
    if runtime.signer is None:
        log.error("dsar: LAMPO_SIGNING_KEY is not set: participants obey none of its tasks")
    holds = HoldsConsumer(runtime)
    holds.register()
    # The coordinator's outbox (coordinator.py): the request lifecycle and the participants' tasks.
    sends(runtime, DSAR_EVENTS, key="request_id")
    sends(runtime, PRIVACY_TASKS, key="request_id")
    # Packages past their expires_at are destroyed (key and chunks); their address answers 410.
    runtime.every(
        "package expiry",
        lambda: packages.expire_due(runtime.pool, runtime.keys, runtime.clock.now),
        interval_s=settings.package_sweep_interval_s,
        first_delay_s=min(settings.package_sweep_interval_s, 10.0),
    )
    if run_checker:
        runtime.app.after_startup(coordinator.start)
    runtime.app.on_shutdown(coordinator.stop)
    return Dsar(runtime, coordinator, requests, acks, holds)


def create_app() -> AsgiFastStream:
    return build().runtime.app


def main() -> None:
    serve(build().runtime)
