"""Composition root of the registry: ``create_app()`` for ``faststream run --factory``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from faststream.asgi import AsgiFastStream
from opentelemetry.sdk.trace import SpanProcessor

from lampo.clock import Clock
from lampo.messaging.consumer import Observer

from lampo.contracts.catalog import REGISTRY_INBOUND
from lampo.registry.handlers import make_inbound_handler
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
    runtime = Runtime(settings or RegistrySettings(), migrations=MIGRATIONS, span_processors=span_processors, clock=clock)
    runtime.consume(REGISTRY_INBOUND, make_inbound_handler(runtime.keys), observers=observers)
    return runtime


def create_app() -> AsgiFastStream:
    return build().app


def main() -> None:
    serve(build())
