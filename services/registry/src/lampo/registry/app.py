"""Composition root of the registry: ``create_app()`` for ``faststream run --factory``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from faststream.asgi import AsgiFastStream
from opentelemetry.sdk.trace import SpanProcessor

from lampo.clock import Clock
from lampo.contracts.catalog import CONSENT_EVENTS, REGISTRY_EVENTS, REGISTRY_INBOUND
from lampo.http_auth import Callers, guard
from lampo.messaging.asyncapi import sends
from lampo.messaging.consumer import ConsumerOptions, Observer
from lampo.participant import subscribe
from lampo.registry.api import subjects_api
from lampo.registry.handlers import make_consent_handler, make_inbound_handler
from lampo.registry.privacy import make_participant
from lampo.registry.resolve import RESOLVE_OPERATION, ResolveApp
from lampo.registry.search import backfill_names
from lampo.registry.settings import RegistrySettings
from lampo.service import Runtime, serve

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


def build(
    settings: RegistrySettings | None = None,
    *,
    observers: Sequence[Observer] = (),
    span_processors: Sequence[SpanProcessor] = (),
    clock: Clock | None = None,
) -> Runtime:
    """The registry. ``runtime.consumers`` is, in order: registry.inbound.v1, consent.events.v1,
    privacy.tasks.v1; ``POST /v1/resolve`` answers the DSAR coordinator; ``GET /v1/subjects/…``
    the staff service (and ``GET /v1/accuracy``, the §12 report), ``POST /v1/search`` the staff
    look-up, and ``GET /v1/audiences/direct_marketing`` marketing exports (api.py)."""
    settings = settings or RegistrySettings()
    resolver = ResolveApp()
    # The staff service's read path and the marketing audience (named callers); the runtime is
    # bound late.
    read_api = subjects_api(lambda: runtime)
    runtime = Runtime(
        settings,
        migrations=MIGRATIONS,
        span_processors=span_processors,
        clock=clock,
        routes=[("/v1/resolve", guard(resolver, Callers.of(settings), "dsar", operation=RESOLVE_OPERATION))],
        mounts=[
            ("/v1/subjects", read_api),
            ("/v1/audiences", read_api),
            ("/v1/accuracy", read_api),
            ("/v1/search", read_api),
        ],
    )
    resolver.bind(lambda: runtime.pool, runtime.keys)
    runtime.consume(
        REGISTRY_INBOUND,
        make_inbound_handler(runtime.keys, runtime.clock),
        observers=observers,
        # Bulk ingest: the next batch is parsed and validated while this one's transaction runs.
        options=ConsumerOptions(max_records=settings.consumer_batch, pipeline=True),
    )
    runtime.consume(CONSENT_EVENTS, make_consent_handler(runtime.keys, runtime.clock), name="registry:consent")
    subscribe(runtime, make_participant(runtime.keys, runtime.clock))
    sends(runtime, REGISTRY_EVENTS, key="subject_id")  # change notices (handlers.py, privacy.py)

    async def name_backfill() -> None:  # migration 0006: names stored before it; then a no-op
        await backfill_names(runtime.pool, runtime.keys, runtime.clock)

    runtime.every("name look-up backfill", name_backfill, interval_s=600.0, first_delay_s=1.0)
    return runtime


def create_app() -> AsgiFastStream:
    return build().app


def main() -> None:
    serve(build())
