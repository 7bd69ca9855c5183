"""Composition root of the consent service: ``create_app()`` for ``faststream run --factory``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from faststream.asgi import AsgiFastStream
from opentelemetry.sdk.trace import SpanProcessor

from lampo.clock import Clock
from lampo.consent.api import consents_api
from lampo.consent.handlers import inbound_handler, participant
from lampo.consent.settings import ConsentSettings
from lampo.consent.staff_read import customers_api
from lampo.consent.store import known
from lampo.contracts.catalog import CONSENT_EVENTS, CONSENT_INBOUND
from lampo.messaging.asyncapi import sends
from lampo.messaging.consumer import ConsumerOptions, Observer
from lampo.participant import subscribe
from lampo.resolve_api import resolve_api
from lampo.service import Runtime, serve

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


def build(
    settings: ConsentSettings | None = None,
    *,
    observers: Sequence[Observer] = (),
    span_processors: Sequence[SpanProcessor] = (),
    clock: Clock | None = None,
) -> Runtime:
    settings = settings or ConsentSettings()
    portal_api = consents_api(lambda: runtime, lambda: settings.event_source)
    portal_api.router.routes.extend(customers_api(lambda: runtime).router.routes)
    runtime = Runtime(
        settings,
        migrations=MIGRATIONS,
        span_processors=span_processors,
        clock=clock,
        # The DSAR coordinator's identity resolution (internal token only); the runtime is bound late.
        mounts=[
            ("/v1/resolve", resolve_api("consent", lambda: runtime, lambda conn, _, number: known(conn, number))),
            # The privacy centre: preferences, grant and withdraw, receipts (api.py); and on the
            # same app, the staff service's read of a customer (staff_read.py).
            ("/v1/customers", portal_api),
            ("/v1/purposes", portal_api),
        ],
    )
    runtime.consume(
        CONSENT_INBOUND,
        inbound_handler(settings.event_source),
        name="consent:inbound",
        observers=observers,
        options=ConsumerOptions(max_records=settings.consumer_batch),
    )
    subscribe(runtime, participant(runtime.clock, settings.event_source))
    sends(runtime, CONSENT_EVENTS, key="customer_number")  # the current state (handlers.py)
    return runtime


def create_app() -> AsgiFastStream:
    return build().app


def main() -> None:
    serve(build())
