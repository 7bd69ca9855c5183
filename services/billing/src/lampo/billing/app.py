"""Composition root of the billing store: ``create_app()`` for ``faststream run --factory``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from faststream.asgi import AsgiFastStream
from opentelemetry.sdk.trace import SpanProcessor

from lampo.billing.api import customers_api
from lampo.billing.domain import RETENTION_HOLDS, RetentionRules
from lampo.billing.handlers import (
    BillingTasks,
    is_hold_state,
    make_holds_handler,
    make_inbound_handler,
    parse_hold_state,
    purge_due,
)
from lampo.billing.settings import BillingSettings
from lampo.billing.store import BillingStore
from lampo.clock import Clock
from lampo.contracts.catalog import BILLING_INBOUND
from lampo.messaging.consumer import Observer
from lampo.participant import subscribe
from lampo.resolve_api import resolve_api
from lampo.service import Runtime, serve

log = logging.getLogger("lampo.billing")
MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


def build(
    settings: BillingSettings | None = None,
    *,
    observers: Sequence[Observer] = (),
    span_processors: Sequence[SpanProcessor] = (),
    clock: Clock | None = None,
    rules: RetentionRules | None = None,
) -> Runtime:
    # The rules are validated before anything connects: a bad rules file stops the start.
    rules = rules or RetentionRules.load()
    settings = settings or BillingSettings()
    runtime = Runtime(
        settings,
        migrations=MIGRATIONS,
        span_processors=span_processors,
        clock=clock,
        # The DSAR coordinator's identity resolution (internal token only); the runtime is bound late.
        mounts=[
            (
                "/v1/resolve",
                resolve_api(
                    "billing", lambda: runtime, lambda conn, rt, number: BillingStore(conn, rt.keys).known(number)
                ),
            ),
            ("/v1/customers", customers_api(lambda: runtime)),  # the staff service's reads (api.py)
        ],
    )
    runtime.consume(BILLING_INBOUND, make_inbound_handler(runtime.keys), observers=observers)
    # The legal holds standing now (internal topic): scheduled deletions skip held customers.
    runtime.consume(RETENTION_HOLDS, make_holds_handler(runtime.keys), parser=parse_hold_state, select=is_hold_state)
    subscribe(runtime, BillingTasks(runtime.keys, runtime.clock, rules).participant(settings.participant_name))

    async def scheduled_deletions() -> None:
        async with runtime.pool.acquire() as conn:
            counts = await purge_due(conn, runtime.keys, runtime.clock)
        if any(counts.values()):
            log.info("billing: scheduled deletions done: %s", counts)  # counts only

    runtime.every(
        "scheduled deletions",
        scheduled_deletions,
        interval_s=settings.purge_interval_s,
        first_delay_s=settings.purge_first_delay_s,
    )
    return runtime


def create_app() -> AsgiFastStream:
    return build().app


def main() -> None:
    serve(build())
