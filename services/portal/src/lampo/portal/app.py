"""Composition root of the privacy centre: ``create_app()`` for ``faststream run --factory``.

The pages are one FastAPI app (lampo.web: session, CSRF, catalogues) served at the site's root
beside the platform's /health/* and /metrics: the runtime mounts it under each of its top-level
paths, and at ``/`` exactly.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from faststream.asgi import AsgiFastStream
from opentelemetry.sdk.trace import SpanProcessor

from lampo.clock import Clock
from lampo.http_auth import credential_headers
from lampo.portal.settings import PortalSettings
from lampo.service import Runtime, serve
from lampo.web import Site

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"
# Pages other helpers add to the portal (each module exposes ``router: APIRouter``), when present.
OPTIONAL_PAGES = ("lampo.portal.consent_pages", "lampo.portal.statement_pages")
PLATFORM_PATHS = frozenset({"/health", "/metrics"})


@dataclass
class Portal:
    runtime: Runtime
    settings: PortalSettings
    site: Site
    pages: FastAPI
    registry: httpx.AsyncClient
    dsar: httpx.AsyncClient


def optional_routers() -> list[APIRouter]:
    routers = []
    for name in OPTIONAL_PAGES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        routers.append(module.router)
    return routers


class _Pages:
    """The pages app as a plain ASGI app (one object per mount: the runtime instruments each)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def page_mounts(app: FastAPI) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """(mounts, routes) for the runtime: every top-level path of ``app`` as a prefix mount, and
    ``/`` as an exact route (a prefix ``/`` would take /health and /metrics too)."""
    prefixes: set[str] = set()
    root = False
    for route in app.routes:
        path = str(getattr(route, "path", "")) or "/"
        first = "/" + path.lstrip("/").split("/", 1)[0]
        if first == "/":
            root = True
        elif first not in PLATFORM_PATHS:
            prefixes.add(first)
    mounts: list[tuple[str, Any]] = [(prefix, _Pages(app)) for prefix in sorted(prefixes)]
    return mounts, ([("/", _Pages(app))] if root else [])


def build(
    settings: PortalSettings | None = None,
    *,
    span_processors: Sequence[SpanProcessor] = (),
    clock: Clock | None = None,
    registry_transport: httpx.AsyncBaseTransport | None = None,
    dsar_transport: httpx.AsyncBaseTransport | None = None,
) -> Portal:
    """The privacy centre. The transports let a test put the registry's and the coordinator's
    real ASGI apps behind the clients instead of a network port."""
    from lampo.portal.pages import create_pages

    settings = settings or PortalSettings()
    # The portal calls the registry and the coordinator as itself (LAMPO_API_TOKEN): the ``portal`` caller.
    timeout, credential = httpx.Timeout(settings.upstream_timeout_s), credential_headers(settings)
    registry = httpx.AsyncClient(
        base_url=settings.registry_url, transport=registry_transport, timeout=timeout, headers=credential
    )
    dsar = httpx.AsyncClient(base_url=settings.dsar_url, transport=dsar_transport, timeout=timeout, headers=credential)
    site = Site(package="lampo.portal", idle_s=settings.verified_ttl_s)
    holder: list[Portal] = []
    pages = create_pages(lambda: holder[0], site, settings, optional_routers())
    mounts, routes = page_mounts(pages)
    runtime = Runtime(
        settings, migrations=MIGRATIONS, span_processors=span_processors, clock=clock, mounts=mounts, routes=routes
    )
    pages.state.settings = settings
    pages.state.clock = runtime.clock
    portal = Portal(runtime, settings, site, pages, registry, dsar)
    holder.append(portal)

    async def close_clients() -> None:
        await registry.aclose()
        await dsar.aclose()

    runtime.app.on_shutdown(close_clients)
    return portal


def create_app() -> AsgiFastStream:
    return build().runtime.app


def main() -> None:
    serve(build().runtime)
