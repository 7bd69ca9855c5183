"""Composition root of the recordings store: ``create_app()`` for ``faststream run --factory``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from faststream.asgi import AsgiFastStream
from opentelemetry.sdk.trace import SpanProcessor

from lampo.clock import Clock
from lampo.contracts.catalog import RECORDINGS_INBOUND
from lampo.messaging.consumer import Observer
from lampo.participant import subscribe
from lampo.recordings.api import customers_api
from lampo.recordings.handlers import RecordingsTasks, make_inbound_handler
from lampo.recordings.settings import RecordingsSettings
from lampo.recordings.store import RecordingsStore
from lampo.resolve_api import resolve_api
from lampo.service import Runtime, serve

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


def build(
    settings: RecordingsSettings | None = None,
    *,
    observers: Sequence[Observer] = (),
    span_processors: Sequence[SpanProcessor] = (),
    clock: Clock | None = None,
) -> Runtime:
    settings = settings or RecordingsSettings()
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
                    "recordings", lambda: runtime, lambda conn, rt, number: RecordingsStore(conn, rt.keys).known(number)
                ),
            ),
            ("/v1/customers", customers_api(lambda: runtime)),  # the staff service's reads (api.py)
        ],
    )
    runtime.consume(RECORDINGS_INBOUND, make_inbound_handler(runtime.keys, runtime.clock), observers=observers)
    subscribe(runtime, RecordingsTasks(runtime.keys, runtime.clock).participant(settings.participant_name))
    return runtime


def create_app() -> AsgiFastStream:
    return build().app


def main() -> None:
    serve(build())
