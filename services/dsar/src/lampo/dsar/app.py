"""Composition root of the DSAR coordinator: ``create_app()`` for ``faststream run --factory``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faststream.asgi import AsgiFastStream
from opentelemetry.sdk.trace import SpanProcessor

from lampo.clock import Clock
from lampo.contracts.catalog import PRIVACY_ACKS
from lampo.dsar import metrics as dsar_metrics
from lampo.dsar.api import create_api
from lampo.dsar.coordinator import Coordinator
from lampo.dsar.handlers import HoldsConsumer, RequestsConsumer, acks_handler, consume_requests
from lampo.dsar.resolver import CustomerNumberResolver, IdentityResolver, RegistryResolver
from lampo.dsar.settings import DsarSettings
from lampo.messaging.consumer import ReliableConsumer
from lampo.service import Runtime, serve

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


@dataclass
class Dsar:
    runtime: Runtime
    coordinator: Coordinator
    requests: RequestsConsumer
    acks: ReliableConsumer
    holds: HoldsConsumer


def make_resolver(settings: DsarSettings) -> IdentityResolver:
    if settings.identity_resolver == "customer_number":
        return CustomerNumberResolver()
    return RegistryResolver(settings.registry_url, timeout_s=settings.resolve_timeout_s)


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
        resolver=resolver or make_resolver(settings),
        pool=lambda: runtime.pool,
    )
    state.update(coordinator=coordinator, pool=lambda: runtime.pool)
    dsar_metrics.register(runtime, lambda: runtime.pool)
    requests = consume_requests(runtime, coordinator)
    acks = runtime.consume(PRIVACY_ACKS, acks_handler(coordinator))
    holds = HoldsConsumer(runtime)
    holds.register()
    if run_checker:
        runtime.app.after_startup(coordinator.start)
    runtime.app.on_shutdown(coordinator.stop)
    return Dsar(runtime, coordinator, requests, acks, holds)


def create_app() -> AsgiFastStream:
    return build().runtime.app


def main() -> None:
    serve(build().runtime)
